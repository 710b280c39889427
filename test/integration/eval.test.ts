import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CORPUS, REPO, tempDir, testModelPath } from '../helpers/testEnv.js';

const BIN = path.join(REPO, 'dist/src/cli/main.js');
const env = { ...process.env, DOCSIFT_HOME: REPO, DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'warn' };

describe('docsift eval', () => {
  it('runs the labelled corpus through the real pipeline with the test model and measures (low scores)', () => {
    const dir = tempDir('eval');
    const saved = path.join(dir, 'results.jsonl');
    const report = path.join(dir, 'report.json');
    const run = spawnSync(process.execPath, [BIN, 'eval', CORPUS, '--save-results', saved, '--report', report], { env, encoding: 'utf8', timeout: 300_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^invoice_number\s+12 /m);
    expect(run.stdout).toMatch(/\d+\/12 documents pass/);
    const json = JSON.parse(fs.readFileSync(report, 'utf8'));
    expect(json.documents).toBe(12);
    expect(fs.readFileSync(saved, 'utf8').trim().split('\n')).toHaveLength(12);
    // Calibration: every compared field lands in one confidence bucket, with its exact-match rate.
    expect(run.stdout).toMatch(/^confidence\s+fields\s+exact$/m);
    const compared = json.perDocument.reduce((n: number, d: { fields: unknown[] }) => n + d.fields.length, 0);
    expect(json.calibration.reduce((n: number, b: { fields: number }) => n + b.fields, 0)).toBe(compared);
    // The saved records (confidence included) score the same when read back without the model.
    const again = spawnSync(process.execPath, [BIN, 'eval', CORPUS, '--results', saved], { env: { ...env, DOCSIFT_MODEL: '' }, encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(run.stdout);
  });

  it('--decoder grammar runs the reference decoder on the same documents', () => {
    const dir = tempDir('eval-grammar');
    for (const f of ['AmazonWebServices', 'FlipkartInvoice']) for (const ext of ['.pdf', '.json']) fs.copyFileSync(path.join(CORPUS, f + ext), path.join(dir, f + ext));
    const saved = path.join(tempDir('eval-out'), 'results.jsonl');
    const run = spawnSync(process.execPath, [BIN, 'eval', dir, '--decoder', 'grammar', '--save-results', saved], { env, encoding: 'utf8', timeout: 300_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/\d+\/2 documents pass/);
    const records = fs.readFileSync(saved, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const r of records) expect(r.decoder).toBe('grammar');
    const bad = spawnSync(process.execPath, [BIN, 'eval', dir, '--decoder', 'beam'], { env, encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--decoder.*walk, grammar/);
  });

  it('a perfect prediction file scores 100%', () => {
    const dir = tempDir('eval');
    const perfect = path.join(dir, 'perfect.jsonl');
    const lines = fs.readdirSync(CORPUS).filter((f) => !f.endsWith('.json')).map((f) => {
      const expected = (JSON.parse(fs.readFileSync(path.join(CORPUS, `${path.parse(f).name}.json`), 'utf8')) as unknown[])[0];
      return JSON.stringify({ filename: f, fields: expected });
    });
    fs.writeFileSync(perfect, lines.join('\n'));
    const run = spawnSync(process.execPath, [BIN, 'eval', CORPUS, '--results', perfect], { env, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('12/12 documents pass; exact match over all labelled fields 100.0%');
  });
});
