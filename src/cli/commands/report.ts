import { InvalidArgumentError } from 'commander';
import type { RedisClient } from '../../queue/connection.js';
import type { ResultRecord } from '../../pipeline/index.js';
import { scanKeys, type Keys } from '../../queue/index.js';
import { withRedis } from '../runtime.js';

/** One tier on one node: what it read and what that took. */
export interface ReportRow {
  queue: string;
  node: string;
  documents: number;
  /** Prompt tokens (evaluated + reused): what an API bills as input. */
  tokensIn: number;
  /** Generated + forced tokens: what an API bills as output. */
  tokensOut: number;
  modelSeconds: number;
}

export interface Report {
  since: string;
  until: string;
  /** Final records: each document once, whichever tiers it went through. */
  documents: number;
  /** Of them, handed on to a larger tier. */
  escalated: number;
  rows: ReportRow[];
}

/**
 * Documents, tokens and model-seconds per tier (queue) and node since a time, from the result
 * records in Redis (they live retention.recordSeconds). Each document counts once: a record a
 * tier or a challenger wrote for another queue's document is counted through that document's
 * final record, whose tiers and challenge say what each model did.
 */
export async function collectReport(redis: RedisClient, keys: Keys, since: Date): Promise<Report> {
  const rows = new Map<string, ReportRow>();
  const add = (queue: string, node: string | undefined, tokens: ResultRecord['tokens'], modelMs: number) => {
    const key = `${queue}\u0000${node ?? 'unknown'}`;
    const row = rows.get(key) ?? { queue, node: node ?? 'unknown', documents: 0, tokensIn: 0, tokensOut: 0, modelSeconds: 0 };
    row.documents += 1;
    row.tokensIn += tokens.prompt + tokens.reused;
    row.tokensOut += tokens.generated + tokens.forced;
    row.modelSeconds += modelMs / 1000;
    rows.set(key, row);
  };
  let documents = 0;
  let escalated = 0;
  for await (const batch of scanKeys(redis, keys.result('*'))) {
    for (const [, raw] of (await batch.node.pipeline(batch.keys.map((k) => ['get', k])).exec()) ?? []) {
      if (typeof raw !== 'string') continue;
      const record = JSON.parse(raw) as ResultRecord;
      if (record.for || Date.parse(record.completedAt) < since.getTime()) continue;
      documents++;
      if (record.tiers) {
        escalated++;
        for (const step of record.tiers) add(step.queue, step.node, step.tokens, step.modelMs);
      } else {
        add(record.queue, record.node, record.tokens, record.timings.classifyMs + record.timings.extractMs);
      }
      if (record.challenge) add(record.challenge.queue, record.challenge.node, record.challenge.tokens, record.challenge.modelMs);
    }
  }
  const sorted = [...rows.values()].sort((a, b) => a.queue.localeCompare(b.queue) || a.node.localeCompare(b.node));
  return { since: since.toISOString(), until: new Date().toISOString(), documents, escalated, rows: sorted.map((r) => ({ ...r, modelSeconds: Math.round(r.modelSeconds * 10) / 10 })) };
}

/** "24h", "7d", "90m", "30s" as milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration such as 90m, 24h or 7d, got "${value}"`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export function reportCommand(options: { since: string; inputPrice?: number; outputPrice?: number; json: boolean }): Promise<number> {
  return withRedis(async (rt, redis) => {
    const report = await collectReport(redis, rt.keys, new Date(Date.now() - parseDuration(options.since)));
    const priced = options.inputPrice !== undefined || options.outputPrice !== undefined;
    const cost = (r: Pick<ReportRow, 'tokensIn' | 'tokensOut'>) => (r.tokensIn * (options.inputPrice ?? 0) + r.tokensOut * (options.outputPrice ?? 0)) / 1e6;
    if (options.json) {
      const rows = report.rows.map((r) => (priced ? { ...r, cost: round2(cost(r)) } : r));
      process.stdout.write(`${JSON.stringify({ ...report, rows, ...(priced ? { price: { inputPerMillion: options.inputPrice ?? 0, outputPerMillion: options.outputPrice ?? 0 }, cost: round2(rows.reduce((n, r) => n + cost(r), 0)) } : {}) })}\n`);
      return 0;
    }
    const header = ['queue', 'node', 'documents', 'tokens in', 'tokens out', 'model-s', ...(priced ? ['API cost'] : [])];
    const lines = report.rows.map((r) => [r.queue, r.node, String(r.documents), String(r.tokensIn), String(r.tokensOut), r.modelSeconds.toFixed(1), ...(priced ? [`$${cost(r).toFixed(2)}`] : [])]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const row = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    process.stdout.write(`${report.documents} documents since ${report.since} (${report.escalated} handed on to a larger tier)\n${row(header)}\n${lines.map(row).join('\n')}\n`);
    if (priced) process.stdout.write(`API cost: the same tokens at $${options.inputPrice ?? 0} per million in and $${options.outputPrice ?? 0} per million out, $${cost({ tokensIn: sum(report.rows, 'tokensIn'), tokensOut: sum(report.rows, 'tokensOut') }).toFixed(2)} in all\n`);
    return 0;
  });
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const sum = (rows: ReportRow[], key: 'tokensIn' | 'tokensOut') => rows.reduce((n, r) => n + r[key], 0);
