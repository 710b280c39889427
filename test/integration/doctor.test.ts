import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/cli/commands/doctor.js';
import { makeHome, REDIS_URL, REPO, tempDir, testModelPath } from '../helpers/testEnv.js';
import { freePort, startRedisServer } from '../helpers/redisServer.js';

const BIN = path.join(REPO, 'dist/src/cli/main.js');
const base = { DOCSIFT_HOME: REPO, DOCSIFT_THREADS: '1' };

describe('docsift doctor', () => {
  it('passes a sound node, warning about what could lose data', async () => {
    const findings = await runDoctor({ ...base, REDIS_URL, DOCSIFT_MODEL: testModelPath() });
    const by = Object.fromEntries(findings.map((f) => [f.check, f]));
    expect(findings.filter((f) => f.level === 'error')).toEqual([]);
    expect(by.config!.level).toBe('ok');
    expect(by.redis!.level).toBe('ok');
    expect(by['redis eviction']!.level).toBe('ok');
    expect(by.backend!.message).toMatch(/^(CPU|cuda|vulkan|metal)/);
    expect(by.model!.message).toContain('loads');
    expect(by.schemas!.level).toBe('ok');
    // This machine has no GPU: every installed binary is judged, and auto settles on the CPU build.
    expect(by['binary cpu']!.message).toContain('runs here');
    expect(by['binary cuda']!.message).toMatch(/CUDA 13 runtime; machine code sm_86.*does not run here: no NVIDIA driver/);
    expect(by['backend choice']!.message).toContain('DOCSIFT_GPU=auto: the worker loads cpu');
    expect(by['ocr documents']!.message).toMatch(/^on: eng \(installed: eng\), 300 dpi, engine libtesseract \(auto: found\), up to \d+ OCR process\(es\) of 1024 MB per worker$/);
    // test/prerequisites.sh installs libpoppler-glib8: doctor points at the faster PDF engine.
    expect(by['pdf documents']!.message).toBe('engine pdf.js; poppler installed here: pdf.engine "poppler" reads text layers 2-12x faster');
  });

  it('errors when DOCSIFT_GPU names a backend that cannot run here, with the fix, and exits 1', () => {
    const run = spawnSync(process.execPath, [BIN, 'doctor'], { env: { ...process.env, ...base, REDIS_URL, DOCSIFT_GPU: 'vulkan' }, encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/^error backend choice: DOCSIFT_GPU=vulkan, but no vulkan build can run here\. Vulkan prebuilt .*: the Vulkan loader libvulkan\.so\.1 is not installed \(fix: install the Vulkan loader/m);
  });

  it('errors on an evicting Redis, and is content with AOF', async () => {
    const redis = await startRedisServer(['--maxmemory-policy', 'allkeys-lru', '--appendonly', 'yes', '--maxmemory', '100mb']);
    const client = new Redis(redis.url);
    try {
      await client.set('docsift:result:a', '{}', 'EX', 600);
      await client.set('docsift:result:b', '{}');
      await client.set(`docsift:doc:${'a'.repeat(64)}`, 'bytes', 'EX', 600);
      await client.set('docsift:failure:c', '{}', 'EX', 600);
      const findings = await runDoctor({ ...base, REDIS_URL: redis.url });
      expect(findings.find((f) => f.check === 'redis keys')!.message).toBe('under docsift: 1 failure, 2 result, 1 stored documents; 1 of docsift\'s own without expiry');
      expect(findings.find((f) => f.check === 'redis memory')!.message).toMatch(/^[\d.]+ MB used of maxmemory 100\.0 MB$/);
      expect(findings.find((f) => f.check === 'redis eviction')).toMatchObject({ level: 'error' });
      expect(findings.find((f) => f.check === 'redis persistence')).toMatchObject({ level: 'ok', message: 'AOF on' });
      expect(findings.find((f) => f.check === 'model')).toMatchObject({ level: 'warn' });
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });

  it('errors on unreachable Redis, a broken model and bad config, and exits 1', async () => {
    const notGguf = path.join(tempDir('doctor'), 'model.gguf');
    fs.writeFileSync(notGguf, 'not a model');
    const findings = await runDoctor({ ...base, REDIS_URL: `redis://127.0.0.1:${await freePort()}`, DOCSIFT_MODEL: notGguf });
    expect(findings.find((f) => f.check === 'redis')).toMatchObject({ level: 'error' });
    expect(findings.find((f) => f.check === 'model')!.message).toContain('not a GGUF model file');
    const home = makeHome({ documents: { pipeline: { mode: 'extract', documentType: 'nope' } } });
    const run = spawnSync(process.execPath, [BIN, 'doctor'], { env: { ...process.env, ...base, DOCSIFT_HOME: home, REDIS_URL }, encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/^error config: .*documents\.json: pipeline\.documentType/m);
    // An OCR language whose data package is not installed fails the configuration, naming the fix.
    const deu = makeHome({ documents: { pipeline: { mode: 'classify-extract' }, ocr: { languages: ['eng', 'deu'] } } });
    const ocr = spawnSync(process.execPath, [BIN, 'doctor'], { env: { ...process.env, ...base, DOCSIFT_HOME: deu, REDIS_URL }, encoding: 'utf8' });
    expect(ocr.stdout).toMatch(/^error config: .*documents\.json: ocr\.languages\.1: no OCR data for "deu": npm install @tesseract\.js-data\/deu \(installed: eng\)/m);
    // A placeholder secret copied from an example file is flagged, naming the variable.
    const placeholder = await runDoctor({ ...base, REDIS_URL, DOCSIFT_WEBHOOK_SECRET: 'change-me-shared-secret' });
    expect(placeholder.find((f) => f.check === 'config')).toMatchObject({ level: 'error', message: expect.stringMatching(/DOCSIFT_WEBHOOK_SECRET: is a placeholder/) });
  });
});

describe('docsift models', () => {
  it('inspect reads architecture, size, quantisation and context, and says how many sequences fit', () => {
    const run = spawnSync(process.execPath, [BIN, 'models', 'inspect', '--json', testModelPath()], { env: { ...process.env, ...base }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const info = JSON.parse(run.stdout);
    expect(info).toMatchObject({ architecture: 'llama', quantisation: 'F32', contextLength: 32768, contextSize: 8192 });
    expect(info.parameters).toBeGreaterThan(10_000);
    expect(info.sequencesThatFit).toBeGreaterThan(0);
    expect(info.bytesPerSequence).toBeGreaterThan(0);
  });

  it('pull says the machine is offline instead of hanging', async () => {
    const started = Date.now();
    const run = spawnSync(process.execPath, [BIN, 'models', 'pull', `http://127.0.0.1:${await freePort()}/model.gguf`], { env: { ...process.env, ...base, DOCSIFT_MODELS_DIR: tempDir('models') }, encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('looks offline');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('list shows the catalogue', () => {
    const run = spawnSync(process.execPath, [BIN, 'models', 'list'], { env: { ...process.env, ...base, DOCSIFT_MODELS_DIR: tempDir('models') }, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('qwen2.5-1.5b');
  });
});
