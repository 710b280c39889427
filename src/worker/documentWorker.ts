import { createHash } from 'node:crypto';
import { DelayedError, UnrecoverableError, WaitingChildrenError, Worker, type Job } from 'bullmq';
import { getJson, setFor, type RedisClient } from '../queue/connection.js';
import { getQueue, type Config, type QueueConfig } from '../config/index.js';
import { DocsiftError, formatFailure, parseFailure, toDocsiftError } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { sourceKind, type Metrics } from '../infra/metrics.js';
import type { Engine } from '../model/index.js';
import { finalOutputs, holdForReview, reviewReasons, type OutputContext, type QueueOutputs } from '../outputs/index.js';
import { DocumentRunner, type DocumentIdentity, type FailureRecord, type ResultRecord } from '../pipeline/index.js';
import { createDocumentQueue, createDocumentStore, documentIdFor, documentRoots, DocumentRef, JobPayload, loadDocument, releaseDocument, type Keys, type S3Bucket } from '../queue/index.js';
import { isMail, sniffFormat, type TextExtractor } from '../text/index.js';
import { ChildJobs } from './childJobs.js';
import { Challenge } from './challenge.js';
import { Escalation, escalationReasons, type Reason } from './escalation.js';
import { MailJob } from './mailJob.js';

export interface DocumentWorkerDeps {
  config: Config;
  queue: QueueConfig;
  redis: RedisClient;
  keys: Keys;
  engine: Engine;
  extractor: TextExtractor;
  outputs: QueueOutputs;
  logger: Logger;
  /** Jobs in flight; equals the engine's sequences. */
  concurrency: number;
  metrics: Metrics;
  /** The bucket of DOCSIFT_STORE=s3, when the installation has one (the caller closes it). */
  s3?: S3Bucket | undefined;
}

/** The reason an in-flight job is aborted at shutdown: it goes back to the queue, no attempt used. */
const SHUTDOWN = 'docsift worker shutting down';
/** The reason an in-flight job is aborted when its lock is gone: another worker may be running it. */
const LOCK_LOST = 'docsift worker lost the job lock';
class LockLost extends Error {
  constructor() { super(LOCK_LOST); }
}

/** The job's progress as each stage starts (Bull Board and GET /v1/documents/:id show it). */
const STAGE_PERCENT = { text: 10, classify: 30, extract: 60, outputs: 90 } as const;

/** What a job's run carries through its steps. */
interface Run {
  startedAt: number;
  report: JobReport;
  log: Logger;
  signal?: AbortSignal;
}

/** A job as far as it can be trusted: its payload, its bytes, and who the document is. */
interface CheckedJob {
  payload: JobPayload;
  bytes: Buffer;
  identity: DocumentIdentity;
}

/**
 * The BullMQ worker for one queue: payload -> bytes -> text -> pipeline -> outputs. Error codes
 * decide what BullMQ does: permanent codes become UnrecoverableError (failed at once), the rest
 * are thrown as plain errors and retried with the queue's backoff.
 */
export class DocumentWorker {
  readonly worker: Worker<JobPayload, ResultRecord>;
  private readonly runner: DocumentRunner;
  private readonly roots: string[];
  private readonly children: ChildJobs;
  private readonly mail: MailJob;
  private readonly escalation: Escalation | undefined;
  private readonly challenge: Challenge | undefined;

  constructor(private readonly deps: DocumentWorkerDeps) {
    this.runner = new DocumentRunner(deps.config, deps.queue, deps.engine, deps.extractor);
    this.roots = documentRoots(deps.config.env);
    // The queues this worker adds child jobs to: its own (an e-mail's parts) and its next tier's.
    const queues = new Map([[deps.queue.name, { queue: createDocumentQueue(deps.queue, deps.redis, deps.keys), config: deps.queue }]]);
    for (const name of [deps.queue.escalate?.to, deps.queue.challenge?.queue]) {
      if (!name) continue;
      const next = getQueue(deps.config, name);
      queues.set(name, { queue: createDocumentQueue(next, deps.redis, deps.keys), config: next });
    }
    this.children = new ChildJobs(deps.redis, deps.keys, queues);
    const flow = {
      config: deps.config, redis: deps.redis, keys: deps.keys, children: this.children, store: createDocumentStore(deps.config.env, deps.redis, deps.keys, deps.s3),
      pipelineVersion: this.runner.pipelineVersion, model: deps.engine.info, node: deps.config.env.DOCSIFT_NODE_NAME,
    };
    this.mail = new MailJob({ ...flow, queue: deps.queue, extractor: deps.extractor });
    this.escalation = deps.queue.escalate ? new Escalation({ ...flow, queue: { ...deps.queue, escalate: deps.queue.escalate } }) : undefined;
    this.challenge = deps.queue.challenge ? new Challenge({ ...flow, queue: { ...deps.queue, challenge: deps.queue.challenge } }) : undefined;
    this.worker = new Worker<JobPayload, ResultRecord>(deps.queue.name, (job, token, signal) => this.process(job, token, signal), {
      connection: deps.redis,
      prefix: deps.keys.bull(deps.queue.name),
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
      deps.metrics.documents.inc({ queue: deps.queue.name, result: 'failed', code });
      deps.logger.error({ jobId: job.id, documentId: this.claimedId(job), code }, 'document failed: workers lost');
      void this.recordFailure(job, { code, message, attempts: job.attemptsMade, willRetry: false }).catch(() => undefined);
      void this.releaseFailed(job);
    });
    this.worker.on('error', (err) => deps.logger.error({ err }, 'worker error'));
    // A lock not renewed in time (Redis unreachable for over half of lockDurationMs, as in a
    // Sentinel failover) lets a stall check hand the job to another worker: stop this run there.
    this.worker.on('lockRenewalFailed', (jobIds) => {
      for (const id of jobIds) this.worker.cancelJob(id, LOCK_LOST);
    });
  }

  run(): void {
    void this.worker.run();
  }

  /**
   * One job: check it, run the document, deliver the record; or fail it with its code. The
   * document's own work is runDocument's (pipeline/); this is BullMQ's side of it: the payload
   * contract, progress and logs, metrics, the review hold and outputs, retry or not.
   */
  private async process(job: Job<JobPayload, ResultRecord>, token: string | undefined, signal: AbortSignal | undefined): Promise<ResultRecord> {
    const startedAt = performance.now();
    const report = new JobReport(job);
    const bindings = { jobId: job.id, queue: this.deps.queue.name };
    let checked: CheckedJob | undefined;
    try {
      try {
        checked = await this.check(job);
      } catch (err) {
        const done = await this.finishedBeforeItDied(job, err);
        if (!done) throw err;
        this.deps.logger.info({ ...bindings, documentId: done.documentId }, 'document done by this job before its worker died: returning its record');
        report.end();
        return done;
      }
      const log = this.deps.logger.child({ ...bindings, documentId: checked.identity.documentId });
      const stored = await this.alreadyDone(job, checked);
      if (stored) {
        log.info({ firstJobId: stored.jobId }, 'document already done: returning its stored result');
        this.deps.metrics.documents.inc({ queue: this.deps.queue.name, result: 'duplicate', code: '' });
        report.end();
        await this.release(job, checked.payload.ref);
        return stored;
      }
      const mail = isMail(sniffFormat(checked.bytes));
      const record = mail
        ? await this.mail.run(job, token, checked.bytes, checked.payload, checked.identity, startedAt, log)
        : await this.runTiered(job, token, checked, { startedAt, report, log, ...(signal ? { signal } : {}) });
      report.progress({ stage: 'outputs', percent: STAGE_PERCENT.outputs });
      await this.holdLock(job, token);
      const outputsMs = await this.deliver(job, record, checked.payload, report.take());
      // What a flow kept between its runs goes once the record is written.
      await (mail ? this.mail.forget(record.documentId) : Promise.all([this.escalation?.forget(record.documentId), this.challenge?.forget(record.documentId)]));
      log.info({ label: record.classification.label, parts: record.children?.length, tiers: record.tiers?.map((t) => t.queue), tokens: record.tokens, totalMs: record.timings.totalMs, outputsMs }, 'document done');
      return record;
    } catch (thrown) {
      report.end();
      // A mail waiting for its parts: BullMQ runs it again when they are done.
      if (thrown instanceof WaitingChildrenError || thrown instanceof DelayedError) throw thrown;
      const log = this.deps.logger.child({ ...bindings, documentId: checked?.identity.documentId ?? job.id });
      if (thrown instanceof LockLost || (signal?.aborted && signal.reason === LOCK_LOST)) {
        // Measured in the Sentinel test: without this, a document in flight across a failover was
        // run and delivered by both workers. Nothing is recorded; BullMQ is told the job moved on.
        this.deps.metrics.documents.inc({ queue: this.deps.queue.name, result: 'lock_lost', code: '' });
        log.warn('lock lost (Redis unreachable past the lock, or the event loop blocked): left to the worker that holds the job now, nothing delivered');
        throw new DelayedError();
      }
      if (signal?.aborted && signal.reason === SHUTDOWN && token) {
        // Hand the job back untouched for another worker (or this one after restart).
        await job.moveToDelayed(Date.now(), token);
        log.warn('released at shutdown');
        throw new DelayedError();
      }
      throw await this.fail(job, toDocsiftError(thrown), checked, log);
    }
  }

  /**
   * The document through this queue's model, and on to the next tier when this one is doubtful
   * (escalate): the final record, or WaitingChildrenError while the next tier works.
   */
  private async runTiered(job: Job<JobPayload, ResultRecord>, token: string | undefined, checked: CheckedJob, run: Run): Promise<ResultRecord> {
    const id = checked.identity.documentId;
    // BullMQ runs a job again once the step it handed on is done: finish that step.
    const handover = await this.escalation?.pending(id);
    if (handover) return this.escalation!.finish(job, token, handover, checked.identity);
    const asked = await this.challenge?.pending(id);
    if (asked) return this.afterChallenge(job, token, checked, run, await this.challenge!.verdict(job, token, asked));
    const { record, failure } = await this.runOwn(checked, run);
    const when = this.deps.queue.escalate?.when;
    const rules = record?.documentType ? this.deps.config.prompts.types.get(record.documentType)?.rules : undefined;
    const reasons = when ? escalationReasons(when, record, failure, rules) : [];
    if (reasons.length) return this.handOn(job, token, checked, run, record, failure, reasons);
    if (!record) throw failure!;
    if (this.challenge && record.fields !== null) {
      run.report.log(`asking the challenger (${this.deps.queue.challenge!.queue})`);
      return this.afterChallenge(job, token, checked, run, await this.challenge.ask(job, token, { bytes: checked.bytes, payload: checked.payload, identity: checked.identity, record }));
    }
    return record;
  }

  /** The document through this worker's model: its record, or the failure a next tier may take over. */
  private async runOwn(checked: CheckedJob, run: Run): Promise<{ record: ResultRecord | null; failure: DocsiftError | null }> {
    const { report, log } = run;
    log.info({ filename: checked.identity.filename, bytes: checked.bytes.length, attempt: checked.identity.attempt }, 'document started');
    const when = this.deps.queue.escalate?.when;
    try {
      const record = await this.runner.run({
        identity: checked.identity, bytes: checked.bytes, startedAt: run.startedAt, signal: run.signal, refuseChunks: when?.tooLong,
        documentType: checked.payload.documentType, onlyFields: checked.payload.escalation?.fields,
        onStage: (stage, detail) => {
          report.progress({ stage, percent: STAGE_PERCENT[stage], ...detail });
          log.debug({ stage, ...detail }, 'stage');
        },
        onOcr: (done, total) => report.progress({ stage: 'text', percent: STAGE_PERCENT.text, ocrPages: { done, total } }),
        onText: (text, textMs) => report.log(`text: ${text.format}, ${text.pages.length} page(s), ${text.chars} chars in ${textMs} ms${text.ocr ? `, OCR on page(s) ${text.ocr.pages.join(', ')} (mean confidence ${text.ocr.meanConfidence})` : ''}`),
      });
      this.observe(record, report);
      return { record, failure: null };
    } catch (thrown) {
      const failure = toDocsiftError(thrown);
      if (!when || escalationReasons(when, null, failure).length === 0) throw failure;
      return { record: null, failure };
    }
  }

  /** With the challenger's verdict: disagreements go to the next tier when the queue says so. */
  private async afterChallenge(job: Job<JobPayload, ResultRecord>, token: string | undefined, checked: CheckedJob, run: Run, record: ResultRecord): Promise<ResultRecord> {
    const disagreed = record.challenge?.disagreed ?? [];
    if (disagreed.length === 0 || this.challenge?.onDisagreement !== 'escalate') return record;
    return this.handOn(job, token, checked, run, record, null, [{ kind: 'disagreement', text: `the challenger (${record.challenge!.model}) disagreed on ${disagreed.join(', ')}`, fields: disagreed }]);
  }

  private handOn(job: Job<JobPayload, ResultRecord>, token: string | undefined, checked: CheckedJob, run: Run, record: ResultRecord | null, failure: DocsiftError | null, reasons: Reason[]): Promise<ResultRecord> {
    const escalation = this.escalation!;
    for (const r of reasons) this.deps.metrics.escalations.inc({ queue: this.deps.queue.name, to: escalation.to, reason: r.kind });
    run.log.info({ to: escalation.to, reasons: reasons.map((r) => r.text) }, 'handed on to the next tier');
    run.report.log(`escalated to ${escalation.to}: ${reasons.map((r) => r.text).join('; ')}`);
    return escalation.handOn(job, token, { bytes: checked.bytes, payload: checked.payload, identity: checked.identity, record, failure, reasons, startedAt: run.startedAt });
  }

  /**
   * The job as far as it can be trusted: the payload against the contract, the bytes read from
   * where the contract allows, their hash, and the document id derived from them, never taken
   * from the job (it names the result's key: a job that chose it could overwrite another's).
   */
  private async check(job: Job<JobPayload, ResultRecord>): Promise<CheckedJob> {
    const parsed = JobPayload.safeParse(job.data);
    if (!parsed.success) {
      throw new DocsiftError('INVALID_JOB', `the job payload does not match the contract: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    const payload = parsed.data;
    const bytes = await loadDocument(this.deps.redis, payload.ref, { keys: this.deps.keys, roots: this.roots, maxBytes: this.deps.queue.limits.maxBytes, s3: this.deps.s3 });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (payload.sha256 && payload.sha256 !== sha256) {
      throw new DocsiftError('INVALID_JOB', `the stored bytes hash to ${sha256}, the job says ${payload.sha256}`);
    }
    if (payload.documentType && !this.deps.config.prompts.types.has(payload.documentType)) {
      throw new DocsiftError('INVALID_JOB', `documentType "${payload.documentType}" has no folder in prompts/`);
    }
    const documentId = documentIdFor(sha256, this.runner.pipelineVersion, payload.documentType, payload.escalation?.fields);
    if (payload.documentId && payload.documentId !== documentId) {
      throw new DocsiftError('DOCUMENT_ID_MISMATCH', `the job says documentId ${payload.documentId}; its bytes and this worker's pipeline give ${documentId}`);
    }
    return {
      payload, bytes,
      identity: {
        documentId, sha256, filename: payload.filename, source: payload.source, metadata: payload.metadata, jobId: job.id ?? documentId, attempt: job.attemptsMade + 1, parent: payload.parent?.documentId,
      },
    };
  }

  /**
   * The document's stored result when another job already completed it: the same bytes under a
   * second job id (a producer with job ids of its own) never run again or overwrite the result,
   * unless the job says force. A retry of the job that wrote it runs again (its outputs failed).
   */
  private async alreadyDone(job: Job, checked: CheckedJob): Promise<ResultRecord | undefined> {
    if (checked.payload.force) return undefined;
    const record = await getJson<ResultRecord>(this.deps.redis, this.deps.keys.result(checked.identity.documentId));
    return record && record.jobId !== job.id ? record : undefined;
  }

  /**
   * A job whose worker died after its outputs and the release of its bytes, before BullMQ recorded
   * the completion, comes back without bytes (DOCUMENT_MISSING) but with its record, written by
   * this same job: it is done, not failed. Found by the soak test, killing workers every 2.5 s.
   */
  private async finishedBeforeItDied(job: Job, err: unknown): Promise<ResultRecord | undefined> {
    if (!(err instanceof DocsiftError) || err.code !== 'DOCUMENT_MISSING') return undefined;
    const record = await getJson<ResultRecord>(this.deps.redis, this.deps.keys.result(this.claimedId(job)));
    return record && record.jobId === job.id && record.review?.status !== 'pending' ? record : undefined;
  }

  /**
   * The document id a job's failure is stored under before its bytes could be checked: derived
   * from the sha256 it claims (+ pipeline + type), as it would be from the bytes, so a lookup by
   * that id finds the failure; the job id when it claims none. Never the documentId a job names.
   */
  private claimedId(job: Job): string {
    const data = (job.data ?? {}) as Record<string, unknown>;
    const { shape } = JobPayload;
    const sha256 = shape.sha256.safeParse(data.sha256).data;
    const fields = shape.escalation.safeParse(data.escalation).data?.fields;
    return sha256 ? documentIdFor(sha256, this.runner.pipelineVersion, shape.documentType.safeParse(data.documentType).data, fields) : job.id ?? 'unknown';
  }

  /** Stage times, tokens and the job's log lines for people watching. */
  private observe(record: ResultRecord, report: JobReport): void {
    const m = this.deps.metrics;
    const queue = { queue: this.deps.queue.name };
    const { timings, tokens } = record;
    const modelMs = timings.classifyMs + timings.extractMs;
    const tokensPerSecond = modelMs > 0 ? Math.round((tokens.generated / modelMs) * 1000) : 0;
    m.stageSeconds.observe({ ...queue, stage: 'text' }, timings.textMs / 1000);
    if (record.classification.method === 'model') m.stageSeconds.observe({ ...queue, stage: 'classify' }, timings.classifyMs / 1000);
    if (record.documentType) m.stageSeconds.observe({ ...queue, stage: 'extract' }, timings.extractMs / 1000);
    m.stageSeconds.observe({ ...queue, stage: 'validate' }, timings.validateMs / 1000);
    for (const kind of ['prompt', 'generated', 'forced', 'reused'] as const) m.tokens.inc({ ...queue, kind }, tokens[kind]);
    m.modelSeconds.inc(queue, modelMs / 1000);
    m.tokensPerSecond.set(queue, tokensPerSecond);
    report.log(`model: ${record.classification.label} (${record.classification.method}); ${tokens.prompt} prompt + ${tokens.generated} generated tokens, ${tokensPerSecond} tok/s; ${record.reasks} re-ask(s)`);
  }

  /** The review hold, then every output (or Redis alone while held), then the bytes go. Returns the outputs' time. */
  private async deliver(job: Job, record: ResultRecord, payload: JobPayload, heldLine: string | undefined): Promise<number> {
    // A tier's result for the tier below: that tier reviews and delivers the final record.
    const handedUp = payload.escalation !== undefined || payload.challenge !== undefined;
    record.node ??= this.deps.config.env.DOCSIFT_NODE_NAME;
    if (payload.escalation) record.for = { documentId: payload.escalation.from, queue: payload.escalation.queue, as: 'escalation' };
    else if (payload.challenge) record.for = { documentId: payload.challenge.from, queue: payload.challenge.queue, as: 'challenge' };
    const reasons = handedUp ? [] : reviewReasons(this.deps.queue, record);
    if (reasons.length) record.review = { status: 'pending', reasons };
    const started = performance.now();
    await this.writeOutputs(record, handedUp, { callbackUrl: payload.callbackUrl, jobLog: heldLine ? { jobKey: `${job.queueQualifiedName}:${job.id}`, line: heldLine } : undefined });
    const outputsMs = Math.round(performance.now() - started);
    this.deps.metrics.stageSeconds.observe({ queue: this.deps.queue.name, stage: 'outputs' }, outputsMs / 1000);
    this.deps.metrics.documents.inc({ queue: this.deps.queue.name, result: 'completed', code: '' });
    this.deps.metrics.completedBy.inc({ queue: this.deps.queue.name, format: record.text.format, source: sourceKind(record.source) });
    // A held record keeps its bytes: export-training reads reviewed documents again.
    if (record.review?.status !== 'pending') await this.release(job, payload.ref);
    return outputsMs;
  }

  /**
   * The fence before outputs: renews this job's lock, or throws LOCK_LOST when another worker may
   * have it. BullMQ notices a lost lock only at its next renewal (every quarter of the lock); this
   * check makes a run that lost it deliver nothing, and the renewal covers the outputs' time.
   */
  private async holdLock(job: Job, token: string | undefined): Promise<void> {
    if (token && (await job.extendLock(token, this.deps.queue.worker.lockDurationMs)) !== 1) throw new LockLost();
  }

  /** Records the failure and returns what BullMQ is to be thrown: retry (Error) or not (UnrecoverableError). */
  private async fail(job: Job, err: DocsiftError, checked: CheckedJob | undefined, log: Logger): Promise<Error> {
    const attempts = job.attemptsMade + 1;
    const willRetry = err.retryable && attempts < (job.opts.attempts ?? 1);
    log[willRetry ? 'warn' : 'error']({ code: err.code, err: err.cause ?? err, attempts, willRetry }, 'document failed');
    await this.recordFailure(job, { code: err.code, message: err.message, attempts, willRetry }, checked)
      .catch((e: unknown) => log.error({ err: e }, 'could not store the failure record'));
    this.deps.metrics.documents.inc({ queue: this.deps.queue.name, result: willRetry ? 'retried' : 'failed', code: err.code });
    if (!willRetry) await this.releaseFailed(job);
    const reason = formatFailure(err.code, err.message);
    return err.retryable ? new Error(reason) : new UnrecoverableError(reason);
  }

  private async writeOutputs(record: ResultRecord, handedUp: boolean, context: OutputContext): Promise<void> {
    // A record held for review reaches the store of record alone until a person makes it final.
    const held = record.review?.status === 'pending';
    if (held) await holdForReview(this.deps.redis, this.deps.keys, record, context);
    for (const output of held || handedUp ? [this.deps.outputs.storeOfRecord] : finalOutputs(this.deps.outputs)) {
      try {
        await output.write(record, context);
      } catch (err) {
        this.deps.metrics.outputFailures.inc({ queue: this.deps.queue.name, output: output.name });
        throw new DocsiftError('OUTPUT_FAILED', `writing the result to ${output.name} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** The failure record, under the checked document id or, before the bytes were checked, the one the job claims. */
  private async recordFailure(job: Job, failure: Pick<FailureRecord, 'code' | 'message' | 'attempts' | 'willRetry'>, checked?: CheckedJob): Promise<void> {
    const documentId = checked?.identity.documentId ?? this.claimedId(job);
    const filename = checked?.payload.filename ?? (job.data as Partial<JobPayload> | undefined)?.filename ?? 'document';
    const record: FailureRecord = { documentId, jobId: job.id ?? documentId, queue: this.deps.queue.name, filename, ...failure, failedAt: new Date().toISOString() };
    await setFor(this.deps.redis, this.deps.keys.failure(documentId), JSON.stringify(record), this.deps.queue.retention.recordSeconds);
  }

  /** A final failure: the stored bytes go, also when they were refused (too large) or never matched the job. */
  private async releaseFailed(job: Job): Promise<void> {
    const ref = DocumentRef.safeParse((job.data as Partial<JobPayload> | undefined)?.ref);
    if (ref.success) await this.release(job, ref.data);
  }

  /**
   * The document is final: its stored bytes go unless another job still holds them
   * (retention.deleteBytesWhenFinal). A failed delete is logged, never the document's failure;
   * the bytes' TTL still bounds them.
   */
  private async release(job: Job, ref: DocumentRef): Promise<void> {
    if (!this.deps.queue.retention.deleteBytesWhenFinal) return;
    await releaseDocument(this.deps.redis, this.deps.keys, ref, `${this.deps.queue.name}:${job.id}`, this.deps.s3)
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
      await this.children.close();
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
