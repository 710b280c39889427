import os from 'node:os';
import { createOutputs, openOutputDeps, ReviewDesk } from '../../outputs/index.js';
import type { ResultRecord } from '../../pipeline/index.js';
import { withRedis } from '../runtime.js';

/** Runs `fn` with the review desk and the outputs a final record goes to, released after. */
function withDesk(fn: (desk: ReviewDesk) => Promise<void>): Promise<number> {
  return withRedis(async (rt, redis) => {
    const outputs = openOutputDeps(rt.config.env, redis, rt.keys, rt.s3);
    try {
      await fn(new ReviewDesk(rt.config, redis, rt.keys, (queue) => createOutputs(queue, { redis, keys: rt.keys, ...outputs })));
      return 0;
    } finally {
      await outputs.close();
    }
  });
}

const summary = (r: ResultRecord) => `${r.documentId}  ${r.filename}  ${r.documentType ?? r.classification.label}  ${r.review?.reasons.join('; ') ?? ''}`;

export function reviewListCommand(options: { json: boolean }): Promise<number> {
  return withDesk(async (desk) => {
    const records = await desk.list(1000);
    for (const r of records) process.stdout.write(options.json ? `${JSON.stringify(r)}\n` : `${summary(r)}\n`);
    if (!options.json && records.length === 0) process.stdout.write('nothing waiting for review\n');
  });
}

export function reviewShowCommand(documentId: string): Promise<number> {
  return withDesk(async (desk) => { process.stdout.write(JSON.stringify(await desk.show(documentId), null, 2) + '\n'); });
}

export function reviewAcceptCommand(documentId: string, options: { by?: string }): Promise<number> {
  return withDesk(async (desk) => {
    const r = await desk.accept(documentId, options.by ?? os.userInfo().username);
    process.stdout.write(`accepted ${r.documentId} by ${r.review!.by}; written to every output\n`);
  });
}

/** --set field=value (value as JSON when it parses, else a string), repeatable. */
export async function reviewCorrectCommand(documentId: string, options: { set: string[]; by?: string }): Promise<number> {
  const changes: Record<string, unknown> = {};
  for (const pair of options.set) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--set ${pair}: expected field=value`);
    const raw = pair.slice(eq + 1);
    let value: unknown;
    try { value = JSON.parse(raw); } catch { value = raw; }
    changes[pair.slice(0, eq)] = value;
  }
  if (Object.keys(changes).length === 0) throw new Error('nothing to correct: give --set field=value');
  return withDesk(async (desk) => {
    const r = await desk.correct(documentId, changes, options.by ?? os.userInfo().username);
    process.stdout.write(`corrected ${r.documentId} by ${r.review!.by}: ${r.review!.changes!.map((c) => `${c.field} ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`).join(', ')}; written to every output\n`);
  });
}
