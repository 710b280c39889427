import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Job states reported by docsift_jobs (BullMQ's names). */
export const JOB_STATES = ['waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children'] as const;

/**
 * Every Prometheus metric docsift exports, in one registry per process. docs/OPERATIONS.md
 * lists them. Instruments are created here and passed to whoever records them.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly jobs = new Gauge({
    name: 'docsift_jobs', help: 'Jobs by queue and state (read from Redis at scrape time)',
    labelNames: ['queue', 'state'] as const, registers: [this.registry],
  });
  readonly stageSeconds = new Histogram({
    name: 'docsift_stage_duration_seconds', help: 'Time per document and stage: text, classify, extract, validate, outputs',
    labelNames: ['queue', 'stage'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers: [this.registry],
  });
  readonly documents = new Counter({
    name: 'docsift_documents_total', help: 'Documents finished by this process, by result (completed, retried, failed, duplicate: already done by another job, lock_lost: left to the worker that took it over) and error code',
    labelNames: ['queue', 'result', 'code'] as const, registers: [this.registry],
  });
  readonly completedBy = new Counter({
    name: 'docsift_documents_completed_total',
    help: 'Documents completed by this process, by format read (pdf, image, docx, xlsx, html, csv, eml, msg, text, markdown) and source (its kind: the part before ":", as cli, api, watch, bullmq; "other" for anything else a producer wrote)',
    labelNames: ['queue', 'format', 'source'] as const, registers: [this.registry],
  });
  readonly escalations = new Counter({
    name: 'docsift_escalations_total', help: 'Documents a tier handed on to the next (larger) model tier, by reason: invalid_output, too_long, failed_check, ungrounded, low_confidence, document_type',
    labelNames: ['queue', 'to', 'reason'] as const, registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'docsift_tokens_total', help: 'Model tokens: prompt (evaluated) and generated',
    labelNames: ['queue', 'kind'] as const, registers: [this.registry],
  });
  readonly modelSeconds = new Counter({
    name: 'docsift_model_seconds_total', help: 'Time documents spent in the model (classify + extract), the figure docsift report prices', labelNames: ['queue'] as const, registers: [this.registry],
  });
  readonly tokensPerSecond = new Gauge({
    name: 'docsift_generated_tokens_per_second', help: 'Generation speed of the last document', labelNames: ['queue'] as const, registers: [this.registry],
  });
  readonly backend = new Gauge({
    name: 'docsift_llama_backend_info',
    help: 'The llama.cpp build this worker runs on (1): backend, binary (cuda, cuda-fallback, vulkan, cpu, local:<folder>) and reason (sass, ptx-jit, vulkan-driver, cpu, default, or probe-failed when a preferred build failed its test decode); docsift doctor explains it',
    labelNames: ['backend', 'binary', 'reason'] as const, registers: [this.registry],
  });
  readonly modelLoadSeconds = new Gauge({ name: 'docsift_model_load_seconds', help: 'Time to load the model at start', registers: [this.registry] });
  readonly sequences = new Gauge({
    name: 'docsift_model_sequences', help: 'Model context sequences: total, and busy with a document', labelNames: ['state'] as const, registers: [this.registry],
  });
  readonly outputFailures = new Counter({
    name: 'docsift_output_failures_total', help: 'Failed writes to a result output (each is retried)', labelNames: ['queue', 'output'] as const, registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'docsift_deliveries_total', help: 'Webhook and callback delivery attempts: delivered, failed (retried), dead_lettered',
    labelNames: ['kind', 'result'] as const, registers: [this.registry],
  });

  /** Run before each scrape: values read from elsewhere (Redis job counts, busy sequences). */
  readonly onScrape: Array<() => Promise<void> | void> = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'docsift_' });
  }

  async render(): Promise<string> {
    await Promise.all(this.onScrape.map(async (f) => { try { await f(); } catch { /* a failed source leaves its last values */ } }));
    return this.registry.metrics();
  }

  /** Keeps docsift_jobs current for these queues. */
  watchQueues(queues: Iterable<{ name: string; getJobCounts(...types: Array<(typeof JOB_STATES)[number]>): Promise<Record<string, number>> }>): void {
    const list = [...queues];
    this.onScrape.push(async () => {
      for (const q of list) {
        const counts = await q.getJobCounts(...JOB_STATES);
        for (const state of JOB_STATES) this.jobs.set({ queue: q.name, state }, counts[state] ?? 0);
      }
    });
  }
}

/** Each check resolves true when ready; /readyz lists them. */
export type HealthChecks = Record<string, () => Promise<boolean>>;

/**
 * /metrics, /healthz (the process answers) and /readyz (every check passes) on their own port,
 * for workers, which serve nothing else over HTTP. Port 0 picks a free port.
 */
export async function startMetricsServer(metrics: Metrics, checks: HealthChecks, port: number, host = '127.0.0.1'): Promise<{ port: number; host: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(await metrics.render());
      } else if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      } else if (req.url === '/readyz') {
        const results = await readiness(checks);
        res.writeHead(results.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(results));
      } else {
        res.writeHead(404).end();
      }
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE'
      ? new Error(`metrics port ${port} is in use (another worker on this machine?): pass --metrics-port with a free port, or 0 for any`)
      : err));
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    host: (server.address() as AddressInfo).address,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function readiness(checks: HealthChecks): Promise<{ ready: boolean; checks: Record<string, boolean> }> {
  const entries = await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await check().catch(() => false)] as const));
  return { ready: entries.every(([, ok]) => ok), checks: Object.fromEntries(entries) };
}

/** A source as a metric label: its kind before ":" (watch:/in/invoices -> watch), bounded so that producers cannot grow the series. */
export function sourceKind(source: string): string {
  const kind = source.split(':', 1)[0]!;
  return /^[a-z][a-z0-9_-]{0,31}$/.test(kind) ? kind : 'other';
}
