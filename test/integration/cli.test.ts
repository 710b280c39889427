import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { CORPUS, makeHome, REDIS_URL, REPO, tempDir, uniquePrefix } from '../helpers/testEnv.js';
import { documentsQueue } from '../helpers/stack.js';
import { makePdf } from '../helpers/pdf.js';
import { renderPage, scan } from '../helpers/scans.js';

/** The CLI as a user runs it: the compiled bin, real processes, real signals. */
const BIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const prefix = uniquePrefix('cli');
const work = tempDir('cli');
const model = path.join(work, 'test-model.gguf');
const queues = { documents: documentsQueue() };
const home = makeHome(queues);
const env = { ...process.env, REDIS_URL, DOCSIFT_PREFIX: prefix, DOCSIFT_HOME: home, DOCSIFT_MODEL: model, DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'info' };

function docsift(args: string[], extraEnv: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: work, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });
}

let worker: ChildProcess;
let workerLog = '';
beforeAll(async () => {
  expect(docsift(['make-test-model', model]).status).toBe(0);
  worker = spawn(process.execPath, [BIN, 'worker', '--metrics-port', '0'], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  worker.stdout!.on('data', (d: Buffer) => { workerLog += d.toString(); });
  worker.stderr!.on('data', (d: Buffer) => { workerLog += d.toString(); });
  const started = Date.now();
  while (!workerLog.includes('worker ready')) {
    if (worker.exitCode !== null || Date.now() - started > 60_000) throw new Error(`worker did not start:\n${workerLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  if (worker.exitCode === null) worker.kill('SIGKILL');
  const redis = new Redis(REDIS_URL);
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

describe('docsift CLI', () => {
  it('enqueue --wait --json prints one schema-valid result record per corpus PDF', () => {
    const pdfs = fs.readdirSync(CORPUS).filter((f) => f.endsWith('.pdf')).map((f) => path.join(CORPUS, f));
    const run = docsift(['enqueue', '--wait', '--json', ...pdfs]);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines).toHaveLength(pdfs.length);
    expect(lines).toHaveLength(11);
    for (const line of lines) {
      expect(line.state).toBe('done');
      expect(['invoice', 'receipt', 'purchase_order', 'contract', 'other']).toContain(line.classification.label);
      expect(typeof line.fields).toBe('object');
    }
    const shown = docsift(['result', lines[0]!.documentId]);
    expect(shown.status).toBe(0);
    expect(JSON.parse(shown.stdout).documentId).toBe(lines[0]!.documentId);
    expect(fs.readdirSync((queues.documents.outputs as { outbox: { dir: string } }).outbox.dir)).toHaveLength(11);
  });

  it('reports failures with their code and exits 1, and one bad file does not stop the others', () => {
    fs.writeFileSync(path.join(work, 'empty.pdf'), '');
    const imports = path.join(work, 'enqueue-imports.txt');
    const run = spawnSync(process.execPath, ['--import', path.join(REPO, 'test/helpers/recordImports.mjs'), BIN, 'enqueue', '--wait', '--json', path.join(work, 'empty.pdf'), path.join(work, 'missing.pdf'), path.join(CORPUS, 'Orlen.txt')], {
      cwd: work, env: { ...env, DOCSIFT_TEST_IMPORTS_FILE: imports }, encoding: 'utf8', timeout: 120_000,
    });
    expect(run.status).toBe(1);
    // A producer loads the queue, not the worker's parts, nor the AWS SDK without a bucket (with
    // them, 1.6 s of imports; now 0.5).
    const packages = new Set(fs.readFileSync(imports, 'utf8').split('\n').flatMap((url) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? []));
    for (const heavy of ['node-llama-cpp', 'pdf-parse', 'mailparser', 'pg', 'fastify', 'tesseract.js', '@aws-sdk/client-s3']) expect(packages.has(heavy), heavy).toBe(false);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const byFile = Object.fromEntries(lines.map((l) => [path.basename(l.file), l]));
    expect(byFile['empty.pdf']).toMatchObject({ state: 'failed', code: 'EMPTY_TEXT' });
    expect(byFile['missing.pdf']).toMatchObject({ state: 'failed', code: 'UNREADABLE_FILE' });
    expect(byFile['Orlen.txt']).toMatchObject({ state: 'done' });
  });

  it('extract-text --json shows pages and text, where each page came from, or the error code, per file', async () => {
    fs.writeFileSync(path.join(work, 'garbage.pdf'), Buffer.from([0, 1, 2, 3]));
    const scanJpeg = await scan(await renderPage(path.join(CORPUS, 'oyo.pdf'), 1, 150), { degrees: 1, quality: 80 });
    fs.writeFileSync(path.join(work, 'mixed.pdf'), makePdf({ pages: ['Cover letter: the scanned invoice follows on the next page.', { jpeg: scanJpeg }] }));
    const run = docsift(['extract-text', '--json', path.join(CORPUS, 'QualityHosting.pdf'), path.join(work, 'garbage.pdf'), path.join(work, 'mixed.pdf')]);
    expect(run.status).toBe(1);
    const [good, bad, mixed] = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(good).toMatchObject({ format: 'pdf', sources: ['text', 'text'], ocr: null });
    expect(good!.pages).toHaveLength(2);
    expect(good!.chars).toBeGreaterThan(1000);
    expect(bad!.error.code).toBe('UNSUPPORTED_FORMAT');
    expect(mixed).toMatchObject({ format: 'pdf', sources: ['text', 'ocr'], ocr: { pages: [2] } });
    expect(mixed!.pages[1].toLowerCase()).toContain('oyo');
    expect(good!.pdfEngine).toBe('pdf.js');
    // The other engine, to compare before changing a queue: poppler reads the text layer, the
    // page without one is still rendered (by pdf.js) and read by OCR.
    const poppler = docsift(['extract-text', '--json', '--pdf-engine', 'poppler', path.join(CORPUS, 'QualityHosting.pdf'), path.join(work, 'mixed.pdf')]);
    expect(poppler.status).toBe(0);
    const [popplerGood, popplerMixed] = poppler.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(popplerGood).toMatchObject({ format: 'pdf', pdfEngine: 'poppler', sources: ['text', 'text'], ocr: null });
    expect(popplerMixed).toMatchObject({ pdfEngine: 'poppler', sources: ['text', 'ocr'], ocr: { pages: [2] } });
    expect(popplerMixed!.pages[0]).toContain('Cover letter');
    expect(popplerMixed!.pages[1].toLowerCase()).toContain('oyo');
  });

  it('has --help on every command', () => {
    const commands = [[], ['up'], ['worker'], ['enqueue'], ['result'], ['extract-text'], ['api'], ['watch'], ['board'], ['doctor'],
      ['models', 'list'], ['models', 'pull'], ['models', 'inspect'], ['review', 'list'], ['review', 'show'], ['review', 'accept'],
      ['review', 'correct'], ['eval'], ['export-training'], ['db', 'migrate'], ['deadletter', 'list'], ['deadletter', 'replay'], ['make-test-model'], ['gpu', 'build']];
    for (const command of commands) {
      const run = docsift([...command, '--help']);
      expect(run.status, command.join(' ')).toBe(0);
      expect(run.stdout).toContain('Usage: docsift');
    }
    // A port out of range is refused before anything starts (it used to reach listen() and hang).
    for (const command of ['api', 'up', 'board']) {
      const bad = docsift([command, '--port', '99999']);
      expect(bad.status, command).toBe(1);
      expect(bad.stderr).toContain(`argument '99999' is invalid. expected a port number`);
    }
    // Help loads the command table, not the commands: no BullMQ, llama.cpp, fastify or pdf.js
    // (with them, 1.8 s a call here instead of 0.3).
    const imports = path.join(work, 'help-imports.txt');
    const help = spawnSync(process.execPath, ['--import', path.join(REPO, 'test/helpers/recordImports.mjs'), BIN, 'worker', '--help'], { env: { ...env, DOCSIFT_TEST_IMPORTS_FILE: imports }, encoding: 'utf8' });
    expect(help.status).toBe(0);
    const packages = new Set(fs.readFileSync(imports, 'utf8').split('\n').flatMap((url) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? []));
    expect([...packages].sort()).toEqual(['commander', 'zod']);
  });

  it('fails fast on bad configuration, naming the key and the file', () => {
    const run = docsift(['enqueue', path.join(CORPUS, 'oyo.pdf')], { DOCSIFT_STORE: 'floppy' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('environment: DOCSIFT_STORE');
    const badHome = makeHome({ documents: { ...queues.documents, attempts: 'three' } });
    const bad = docsift(['worker'], { DOCSIFT_HOME: badHome });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`${path.join(badHome, 'queues', 'documents.json')}: attempts:`);
    const noModel = docsift(['worker'], { DOCSIFT_MODEL: path.join(work, 'nope.gguf') });
    expect(noModel.status).toBe(1);
    expect(noModel.stderr).toContain('model file not found');
    // A backend this machine cannot run is refused before llama.cpp loads (no NVIDIA driver here).
    const cuda = docsift(['worker'], { DOCSIFT_GPU: 'cuda' });
    expect(cuda.status).toBe(2);
    expect(cuda.stderr).toContain('configuration error: environment: DOCSIFT_GPU: DOCSIFT_GPU=cuda, but no cuda build can run here. CUDA prebuilt');
    expect(cuda.stderr).toContain('no NVIDIA driver on this machine');
  });

  it('the worker stops cleanly on SIGTERM with exit status 0', async () => {
    worker.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => worker.once('exit', (c) => resolve(c)));
    expect(code, workerLog.slice(-2000)).toBe(0);
    expect(workerLog).toContain('worker stopped');
  });
});
