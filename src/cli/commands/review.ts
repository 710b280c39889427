import os from 'node:os';
import { createOutputs, openOutputDeps, ReviewDesk } from '../../outputs/index.js';
import type { ResultRecord } from '../../pipeline/index.js';
import { createRuntime, openRedis } from '../runtime.js';

/** Opens the review desk with the outputs a final record goes to; close() releases them. */
async function openDesk() {
  const rt = createRuntime('stderr');
  const redis = await openRedis(rt);
  const outputs = openOutputDeps(rt.config.env, redis, rt.keys, rt.s3);
  const desk = new ReviewDesk(rt.config, redis, rt.keys, (queue) => createOutputs(queue, { redis, keys: rt.keys, ...outputs }));
  return { desk, close: async () => { await outputs.close(); await redis.quit(); } };
}

const summary = (r: ResultRecord) => `${r.documentId}  ${r.filename}  ${r.documentType ?? r.classification.label}  ${r.review?.reasons.join('; ') ?? ''}`;

export async function reviewListCommand(options: { json: boolean }): Promise<number> {
  const { desk, close } = await openDesk();
  try {
    const records = await desk.list(1000);
    for (const r of records) process.stdout.write(options.json ? `${JSON.stringify(r)}\n` : `${summary(r)}\n`);
    if (!options.json && records.length === 0) process.stdout.write('nothing waiting for review\n');
    return 0;
  } finally {
    await close();
  }
}

export async function reviewShowCommand(documentId: string): Promise<number> {
  const { desk, close } = await openDesk();
  try {
    process.stdout.write(JSON.stringify(await desk.show(documentId), null, 2) + '\n');
    return 0;
  } finally {
    await close();
  }
}

export async function reviewAcceptCommand(documentId: string, options: { by?: string }): Promise<number> {
  const { desk, close } = await openDesk();
  try {
    const r = await desk.accept(documentId, options.by ?? os.userInfo().username);
    process.stdout.write(`accepted ${r.documentId} by ${r.review!.by}; written to every output\n`);
    return 0;
  } finally {
    await close();
  }
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
  const { desk, close } = await openDesk();
  try {
    const r = await desk.correct(documentId, changes, options.by ?? os.userInfo().username);
    process.stdout.write(`corrected ${r.documentId} by ${r.review!.by}: ${r.review!.changes!.map((c) => `${c.field} ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`).join(', ')}; written to every output\n`);
    return 0;
  } finally {
    await close();
  }
}
