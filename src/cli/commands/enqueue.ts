import path from 'node:path';
import { toDocsiftError } from '../../infra/errors.js';
import { readCliFile } from '../args.js';
import { Enqueuer, waitForDocuments, type DocumentStatus } from '../../ingest/index.js';
import { Progress } from '../progress.js';
import { createRuntime, openQueue } from '../runtime.js';

export interface EnqueueOptions {
  queue: string;
  wait: boolean;
  json: boolean;
  force: boolean;
  timeout: number;
  metadata?: string;
}

type Line = Record<string, unknown> & { file: string };

/**
 * Enqueues files; with --wait, waits for each to finish. With --json every file gets exactly one
 * line on stdout: its result record, its failure with code, or (timeout) its current state.
 * Exit status 1 when any file failed or did not finish in time.
 */
export async function enqueueCommand(files: string[], options: EnqueueOptions): Promise<number> {
  const rt = createRuntime('stderr');
  let metadata: Record<string, unknown> = {};
  if (options.metadata) {
    try {
      metadata = JSON.parse(options.metadata) as Record<string, unknown>;
    } catch {
      throw new Error(`--metadata must be a JSON object, got ${options.metadata}`);
    }
  }
  const { redis, queueConfig, queue, store } = await openQueue(rt, options.queue);
  const enqueuer = new Enqueuer(rt.config, queueConfig, queue, redis, rt.keys, store);
  const print = (line: Line) => {
    if (options.json) process.stdout.write(JSON.stringify(line) + '\n');
    else if (line.state === 'failed') process.stdout.write(`failed   ${line.file}  ${String(line.code)}: ${String(line.message)}\n`);
    else if (line.state === 'done') process.stdout.write(`done     ${line.file}  ${String(line.documentId)}  ${String((line.classification as { label: string }).label)}\n`);
    else process.stdout.write(`${String(line.state).padEnd(8)} ${line.file}  ${String(line.documentId ?? '')}\n`);
  };
  let failed = 0;
  const waiting: Array<{ documentId: string; jobId: string; file: string }> = [];
  const progress = new Progress(files.length, 'enqueue');
  try {
    for (const [i, file] of files.entries()) {
      try {
        const bytes = await readCliFile(file);
        const outcome = await enqueuer.enqueue({ bytes, filename: path.basename(file), source: 'cli', metadata, force: options.force });
        if (options.wait) waiting.push({ documentId: outcome.documentId, jobId: outcome.jobId, file });
        else print({ file, state: outcome.status, documentId: outcome.documentId, jobId: outcome.jobId });
      } catch (err) {
        const e = toDocsiftError(err);
        failed++;
        print({ file, state: 'failed', code: e.code, message: e.message });
      }
      progress.update(i + 1);
    }
    progress.finish();
    if (options.wait && waiting.length > 0) {
      const bar = new Progress(waiting.length, 'process');
      let settled = 0;
      const report = (status: DocumentStatus, file: string) => {
        if (status.state === 'done') print({ file, state: 'done', ...status.record });
        else if (status.state === 'failed') { failed++; print({ file, state: 'failed', documentId: status.documentId, code: status.code, message: status.message, attempts: status.attempts }); }
        else { failed++; print({ file, state: status.state, documentId: status.documentId }); }
      };
      const statuses = await waitForDocuments(queue, redis, rt.keys, waiting, {
        timeoutMs: options.timeout * 1000,
        onSettled: (status, i) => { bar.update(++settled); report(status, waiting[i]!.file); },
      });
      bar.finish();
      // Documents still pending at the timeout are reported once, with their state.
      statuses.forEach((status, i) => {
        if (status.state !== 'done' && status.state !== 'failed') report(status, waiting[i]!.file);
      });
    }
  } finally {
    await queue.close();
    await redis.quit();
  }
  return failed > 0 ? 1 : 0;
}
