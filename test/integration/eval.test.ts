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
    // The saved records score the same when read back without the model.
    const again = spawnSync(process.execPath, [BIN, 'eval', CORPUS, '--results', saved], { env: { ...env, DOCSIFT_MODEL: '' }, encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stdout.split('\n').at(-2)).toBe(run.stdout.split('\n').at(-2));
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
