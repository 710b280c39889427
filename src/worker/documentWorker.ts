import { createHash } from 'node:crypto';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { pipelineVersion, promptVersions, type Config, type QueueConfig } from '../config/index.js';
import { DocsiftError, formatFailure, parseFailure, toDocsiftError } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import type { Metrics } from '../infra/metrics.js';
import type { Engine } from '../model/index.js';
import { reviewReasons, type OutputContext, type ResultOutput } from '../outputs/index.js';
import { Pipeline, type FailureRecord, type ResultRecord } from '../pipeline/index.js';
import { documentIdFor, documentRoots, DocumentRef, JobPayload, loadDocument, releaseDocument, type Keys } from '../queue/index.js';
import type { TextExtractor } from '../text/index.js';

export interface DocumentWorkerDeps {
  config: Config;
  queue: QueueConfig;
  redis: Redis;
  keys: Keys;
  engine: Engine;
  extractor: TextExtractor;
  outputs: ResultOutput[];
  logger: Logger;
  /** Jobs in flight; equals the engine's sequences. */
  concurrency: number;
  metrics: Metrics;
}

/** The reason an in-flight job is aborted at shutdown: it goes back to the queue, no attempt used. */
const SHUTDOWN = 'docsift worker shutting down';

/**
 * The BullMQ worker for one queue: payload -> bytes -> text -> pipeline -> outputs. Error codes
 * decide what BullMQ does: permanent codes become UnrecoverableError (failed at once), the rest
 * are thrown as plain errors and retried with the queue's backoff.
 */
export class DocumentWorker {
  readonly worker: Worker<JobPayload, ResultRecord>;
  private readonly pipeline: Pipeline;
  private readonly pipelineVersion: string;
  private readonly promptVersions: Record<string, string>;
  private readonly roots: string[];

  constructor(private readonly deps: DocumentWorkerDeps) {
    this.pipeline = new Pipeline(deps.config, deps.queue, deps.engine);
    this.pipelineVersion = pipelineVersion(deps.config, deps.queue);
    this.promptVersions = promptVersions(deps.config, deps.queue);
    this.roots = documentRoots(deps.config.env);
    this.worker = new Worker<JobPayload, ResultRecord>(deps.queue.name, (job, token, signal) => this.process(job, token, signal), {
      connection: deps.redis,
      prefix: deps.keys.bull,
      concurrency: deps.concurrency,
      autorun: false,
      // Lock renewal runs on the event loop, which inference and PDF parsing never block (both run
      // off-thread), so BullMQ's 30 s lock renewed every 15 s holds even for minute-long jobs.
      lockDuration: deps.queue.worker.lockDurationMs,
      stalledInterval: deps.queue.worker.stalledIntervalMs,
      // See the queue file's worker options: re-delivery after a worker dies, then WORKER_LOST.
      maxStalledCount: deps.queue.worker.maxStalledCount,
    });
    this.worker.on('failed', (job, err) => {
      // Jobs failed by the stall checker never reach the processor's catch: record them here.
      if (!job || !/stalled more than allowable limit/.test(err.message)) return;
      const { code, message } = parseFailure(err.message);
      const documentId = (job.data as Partial<JobPayload>).documentId ?? job.id ?? 'unknown';
      deps.metrics.documents.inc({ queue: deps.queue.name, result: 'failed', code });
      deps.logger.error({ jobId: job.id, documentId, code }, 'document failed: workers lost');
      void this.recordFailure({
        documentId, jobId: job.id ?? documentId, queue: deps.queue.name, filename: (job.data as Partial<JobPayload>).filename ?? 'document',
        code, message, attempts: job.attemptsMade, willRetry: false, failedAt: new Date().toISOString(),
      }).catch(() => undefined);
      const ref = DocumentRef.safeParse((job.data as Partial<JobPayload>).ref);
      if (ref.success) void this.release(job, ref.data);
    });
    this.worker.on('error', (err) => deps.logger.error({ err }, 'worker error'));
  }

  run(): void {
    void this.worker.run();
  }

  private async process(job: Job<JobPayload, ResultRecord>, token: string | undefined, signal: AbortSignal | undefined): Promise<ResultRecord> {
    const started = performance.now();
    // One child logger per job, made once the document id is known (or when a failure needs it).
    const bindings = { jobId: job.id, queue: this.deps.queue.name };
    let jobLog: Logger | undefined;
    const log = () => (jobLog ??= this.deps.logger.child(bindings));
    const report = new JobReport(job);
    let documentId = job.id ?? 'unknown';
    let filename = 'document';
    let ref: DocumentRef | undefined;
    try {
      const parsed = JobPayload.safeParse(job.data);
      if (!parsed.success) {
        throw new DocsiftError('INVALID_JOB', `the job payload does not match the contract: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      }
      const payload = parsed.data;
      filename = payload.filename;
      ref = payload.ref;
      const bytes = await loadDocument(this.deps.redis, payload.ref, { keys: this.deps.keys, roots: this.roots, maxBytes: this.deps.queue.limits.maxBytes });
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (payload.sha256 && payload.sha256 !== sha256) {
        throw new DocsiftError('INVALID_JOB', `the stored bytes hash to ${sha256}, the job says ${payload.sha256}`);
      }
      if (payload.documentType && !this.deps.config.prompts.types.has(payload.documentType)) {
        throw new DocsiftError('INVALID_JOB', `documentType "${payload.documentType}" has no folder in prompts/`);
      }
      // The id names the result's key: a job that chose it could overwrite another document's result.
      const derived = documentIdFor(sha256, this.pipelineVersion, payload.documentType);
      if (payload.documentId && payload.documentId !== derived) {
        throw new DocsiftError('DOCUMENT_ID_MISMATCH', `the job says documentId ${payload.documentId}; its bytes and this worker's pipeline give ${derived}`);
      }
      documentId = derived;
      jobLog = this.deps.logger.child({ ...bindings, documentId });
      jobLog.info({ filename, bytes: bytes.length, attempt: job.attemptsMade + 1 }, 'document started');

      report.progress({ stage: 'text', percent: 10 });
      const textStarted = performance.now();
      const { limits } = this.deps.queue;
      const text = await this.deps.extractor.extract(bytes, {
        maxBytes: limits.maxBytes, maxPages: limits.maxPages, timeoutMs: limits.textTimeoutMs, memoryMb: limits.textMemoryMb,
      });
      const textMs = Math.round(performance.now() - textStarted);
      const queueLabel = { queue: this.deps.queue.name };
      this.deps.metrics.stageSeconds.observe({ ...queueLabel, stage: 'text' }, textMs / 1000);
      report.log(`text: ${text.format}, ${text.pages.length} page(s), ${text.chars} chars in ${textMs} ms`);

      const out = await this.pipeline.run({
        text,
        ...(payload.documentType ? { documentType: payload.documentType } : {}),
        ...(signal ? { signal } : {}),
        onStage: (stage, detail) => {
          report.progress({ stage, percent: stage === 'classify' ? 30 : 60, ...detail });
          log().debug({ stage, ...detail }, 'stage');
        },
      });
      const modelMs = out.timings.classifyMs + out.timings.extractMs;
      const tokensPerSecond = modelMs > 0 ? Math.round((out.tokens.generated / modelMs) * 1000) : 0;
      const m = this.deps.metrics;
      if (out.classification.method === 'model') m.stageSeconds.observe({ ...queueLabel, stage: 'classify' }, out.timings.classifyMs / 1000);
      if (out.documentType) m.stageSeconds.observe({ ...queueLabel, stage: 'extract' }, out.timings.extractMs / 1000);
      m.stageSeconds.observe({ ...queueLabel, stage: 'validate' }, out.timings.validateMs / 1000);
      m.tokens.inc({ ...queueLabel, kind: 'prompt' }, out.tokens.prompt);
      m.tokens.inc({ ...queueLabel, kind: 'generated' }, out.tokens.generated);
      m.tokens.inc({ ...queueLabel, kind: 'forced' }, out.tokens.forced);
      m.tokens.inc({ ...queueLabel, kind: 'reused' }, out.tokens.reused);
      m.tokensPerSecond.set(queueLabel, tokensPerSecond);
      report.log(`model: ${out.classification.label} (${out.classification.method}); ${out.tokens.prompt} prompt + ${out.tokens.generated} generated tokens, ${tokensPerSecond} tok/s; ${out.reasks} re-ask(s)`);

      const record: ResultRecord = {
        documentId,
        sha256,
        filename,
        source: payload.source,
        metadata: payload.metadata,
        queue: this.deps.queue.name,
        pipelineVersion: this.pipelineVersion,
        prompts: this.promptVersions,
        model: { file: this.deps.engine.info.file, sha256: this.deps.engine.info.sha256, lora: this.deps.engine.info.lora },
        classification: out.classification,
        documentType: out.documentType,
        fields: out.fields,
        confidence: out.confidence,
        fieldPages: out.fieldPages,
        chunks: out.chunks,
        checks: out.checks,
        grounding: out.grounding,
        text: { format: text.format, pages: text.pages.length, chars: text.chars },
        timings: { textMs, ...out.timings, totalMs: 0 },
        tokens: out.tokens,
        attempts: job.attemptsMade + 1,
        reasks: out.reasks,
        warnings: out.warnings,
        jobId: job.id ?? documentId,
        completedAt: new Date().toISOString(),
        review: null,
      };
      const reasons = reviewReasons(this.deps.queue, record);
      if (reasons.length) record.review = { status: 'pending', reasons };
      report.progress({ stage: 'outputs', percent: 90 });
      // Every output stores the same record, so it cannot hold the time spent writing it (logged instead).
      const outputsStarted = performance.now();
      record.timings.totalMs = Math.round(outputsStarted - started);
      const heldLine = report.take();
      await this.writeOutputs(record, {
        ...(payload.callbackUrl ? { callbackUrl: payload.callbackUrl } : {}),
        ...(heldLine ? { jobLog: { jobKey: `${job.queueQualifiedName}:${job.id}`, line: heldLine } } : {}),
      });
      const outputsMs = Math.round(performance.now() - outputsStarted);
      m.stageSeconds.observe({ ...queueLabel, stage: 'outputs' }, outputsMs / 1000);
      m.documents.inc({ ...queueLabel, result: 'completed', code: '' });
      log().info({ label: out.classification.label, tokens: out.tokens, totalMs: record.timings.totalMs, outputsMs }, 'document done');
      // A held record keeps its bytes: export-training reads reviewed documents again.
      if (record.review?.status !== 'pending') await this.release(job, payload.ref);
      return record;
    } catch (thrown) {
      report.end();
      if (signal?.aborted && signal.reason === SHUTDOWN && token) {
        // Hand the job back untouched for another worker (or this one after restart).
        await job.moveToDelayed(Date.now(), token);
        log().warn('released at shutdown');
        throw new DelayedError();
      }
      const err = toDocsiftError(thrown);
      const attempts = job.attemptsMade + 1;
      const willRetry = err.retryable && attempts < (job.opts.attempts ?? 1);
      log()[willRetry ? 'warn' : 'error']({ code: err.code, err: err.cause ?? err, attempts, willRetry }, 'document failed');
      await this.recordFailure({
        documentId, jobId: job.id ?? documentId, queue: this.deps.queue.name, filename,
        code: err.code, message: err.message, attempts, willRetry, failedAt: new Date().toISOString(),
      }).catch((e: unknown) => log().error({ err: e }, 'could not store the failure record'));
      this.deps.metrics.documents.inc({ queue: this.deps.queue.name, result: willRetry ? 'retried' : 'failed', code: err.code });
      if (!willRetry && ref) await this.release(job, ref);
      const reason = formatFailure(err.code, err.message);
      throw err.retryable ? new Error(reason) : new UnrecoverableError(reason);
    }
  }

  private async writeOutputs(record: ResultRecord, context: OutputContext): Promise<void> {
    // A result held for review goes to Redis only (the first output) until a person makes it final.
    const outputs = record.review?.status === 'pending' ? this.deps.outputs.slice(0, 1) : this.deps.outputs;
    if (record.review?.status === 'pending') {
      // The callback waits with the record (not in it: a URL's token is not for every reader of results).
      const tx = this.deps.redis.multi().zadd(this.deps.keys.reviewPending, Date.now(), record.documentId);
      if (context.callbackUrl) tx.set(this.deps.keys.reviewCallback(record.documentId), context.callbackUrl);
      await tx.exec();
    }
    for (const output of outputs) {
      try {
        await output.write(record, context);
      } catch (err) {
        this.deps.metrics.outputFailures.inc({ queue: this.deps.queue.name, output: output.name });
        throw new DocsiftError('OUTPUT_FAILED', `writing the result to ${output.name} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  private async recordFailure(failure: FailureRecord): Promise<void> {
    const key = this.deps.keys.failure(failure.documentId);
    const seconds = this.deps.queue.retention.recordSeconds;
    await (seconds > 0 ? this.deps.redis.set(key, JSON.stringify(failure), 'EX', seconds) : this.deps.redis.set(key, JSON.stringify(failure)));
  }

  /**
   * The document is final: its stored bytes go unless another job still holds them
   * (retention.deleteBytesWhenFinal). A failed delete is logged, never the document's failure;
   * the bytes' TTL still bounds them.
   */
  private async release(job: Job, ref: DocumentRef): Promise<void> {
    if (!this.deps.queue.retention.deleteBytesWhenFinal) return;
    await releaseDocument(this.deps.redis, this.deps.keys, ref, `${this.deps.queue.name}:${job.id}`)
      .catch((err: unknown) => this.deps.logger.warn({ err, jobId: job.id }, 'could not delete the stored bytes'));
  }

  /**
   * Stops taking jobs and waits up to graceMs for in-flight ones; then aborts them, which hands
   * them back to the queue without using an attempt.
   */
  async close(graceMs: number): Promise<void> {
    const closing = this.worker.close();
    const timer = setTimeout(() => this.worker.cancelAllJobs(SHUTDOWN), graceMs);
    try {
      await closing;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** How long a job runs before its progress and log lines are sent to Redis. */
const REPORT_AFTER_MS = 200;

/**
 * Progress and job-log lines are for people watching a job, and nobody watches one that is done
 * in a fraction of a second. So nothing is sent until the job has run REPORT_AFTER_MS; then the
 * latest progress and the held lines go out, and later ones as they come. A job that ends sooner
 * gets its lines as one log entry, written with its result, and no progress (its state says
 * done). That takes a fast job from six script calls for progress and logs to none of its own.
 * Writes are not awaited (they keep their order on the connection) and a failed write is not
 * the document's failure.
 */
class JobReport {
  private held: { progress?: object; lines: string[] } | null = { lines: [] };
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly job: Job) {
    this.timer = setTimeout(() => this.release(), REPORT_AFTER_MS);
    this.timer.unref();
  }

  progress(value: object): void {
    if (this.held) this.held.progress = value;
    else send(this.job.updateProgress(value));
  }

  log(line: string): void {
    if (this.held) this.held.lines.push(line);
    else send(this.job.log(line));
  }

  end(): void {
    const line = this.take();
    if (line) send(this.job.log(line));
  }

  /**
   * Ends the report and returns the held lines as one entry, for the caller to write with the
   * result (one round trip instead of two); undefined when they were already sent or none.
   */
  take(): string | undefined {
    clearTimeout(this.timer);
    const held = this.held;
    this.held = null;
    return held?.lines.length ? held.lines.join(' | ') : undefined;
  }

  private release(): void {
    const held = this.held;
    this.held = null;
    if (!held) return;
    if (held.progress) send(this.job.updateProgress(held.progress));
    for (const line of held.lines) send(this.job.log(line));
  }
}

function send(write: Promise<unknown>): void {
  write.catch(() => undefined);
}
