import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/testEnv.js';

const run = promisify(execFile);

/**
 * `npm run bench -- --quick` in CI, so that the bench never rots. Only that every part ran and
 * reported is checked: speed is the bench's business, never a test's.
 */
describe('npm run bench -- --quick', () => {
  it('runs every part and ends with the summary JSON', async () => {
    const { stdout } = await run(process.execPath, [path.join(REPO, 'dist', 'bench', 'bench.js'), '--quick'], {
      cwd: REPO, env: { ...process.env, DOCSIFT_THREADS: '1' }, maxBuffer: 16 * 1024 * 1024, timeout: 600_000,
    });
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!);
    for (const key of ['constrained_decode_ratio', 'pipeline_vs_raw', 'prefix_reuse_speedup', 'forced_decoding_speedup', 'work_efficiency', 'queue_overhead_ratio', 'queue_overhead_same_io_ratio', 'rss_growth_ratio', 'event_loop_delay_p99_ms']) {
      expect(summary[key], key).toBeGreaterThan(0);
    }
    expect(Object.keys(summary.batch_speedup)).toEqual(['1', '2']);
    // test/prerequisites.sh installs poppler (pdftotext and its library), so both PDF engines run.
    expect(summary.pdf_engine).toBe('poppler');
    expect(summary.pdf_vs_pdftotext).toBeGreaterThan(0);
    expect(summary.pdf_generated_vs_pdftotext).toBeGreaterThan(0);
    expect(summary.pdf_pdfjs_vs_pdftotext.corpus).toBeGreaterThan(0);
    // test/prerequisites.sh installs tesseract, so the OCR comparison runs.
    expect(summary.ocr_vs_tesseract).toBeGreaterThan(0);
    expect(summary.ocr_recall.docsift).toBeGreaterThan(0.9);
    expect(summary.machine).toMatchObject({ backend: 'cpu', model_shape: { nEmbd: 576, nHead: 9, nHeadKv: 3, nFf: 1536 } });
  }, 600_000);
});

describe('npm run scale, tiny', () => {
  it('runs simulated worker nodes against one Redis and reports documents/s, Redis CPU and memory per step', async () => {
    const { stdout } = await run(process.execPath, [path.join(REPO, 'dist', 'bench', 'scale.js'), '--nodes', '1,2', '--docs', '60'], { cwd: REPO, timeout: 120_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { steps: Array<Record<string, number>> };
    expect(result.steps.map((s) => s.nodes)).toEqual([1, 2]);
    for (const step of result.steps) {
      for (const key of ['docsPerS', 'redisCpuUsPerDoc', 'redisBytesPerWaitingDoc', 'redisBytesPerDoneDoc', 'redisBytesPerRecord']) expect(step[key], key).toBeGreaterThan(0);
    }
  }, 120_000);
});
