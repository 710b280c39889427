import { pipelineVersion, promptVersions, type Config, type QueueConfig } from '../config/index.js';
import type { Engine } from '../model/index.js';
import { textLimits, type ExtractedText, type TextExtractor } from '../text/index.js';
import { Pipeline, type PipelineOutput } from './pipeline.js';
import { makeRecord, type DocumentIdentity, type ResultRecord } from './record.js';

export interface DocumentRun {
  /** What the document is and where it came from; the caller checked it. */
  identity: DocumentIdentity;
  bytes: Uint8Array;
  /** Extract this type without classifying (a watched folder's inbox/<type>/, a job's documentType). */
  documentType?: string;
  signal?: AbortSignal;
  /** Fail DOCUMENT_TOO_LONG rather than read in chunks (a queue that escalates long documents). */
  refuseChunks?: boolean;
  /** Extract only these top-level fields (a tier re-extracting the doubtful fields of the tier below). */
  onlyFields?: readonly string[];
  /** performance.now() when the caller started on the document; the record's totalMs counts from it. */
  startedAt?: number;
  /** Called as each stage starts, for job progress and logs. */
  onStage?: (stage: 'text' | 'classify' | 'extract', detail?: Record<string, unknown>) => void;
  /** Called as OCR finishes each page of a scan (job progress). */
  onOcr?: (done: number, total: number) => void;
  /** Called when the text is read, before the model stage (long jobs show it while they run). */
  onText?: (text: ExtractedText, textMs: number) => void;
}

export interface DocumentOutcome {
  record: ResultRecord;
  /** What the text stage read, for logs and callers that show it. */
  text: ExtractedText;
  /** The pipeline's own account (tokens, stage timings), for metrics. */
  pipeline: PipelineOutput;
}

/**
 * One document from bytes to its result record: text -> classify/extract/validate -> record.
 * Built once per queue and process (it holds the pipeline's validators and prompt cache); the
 * worker, `docsift eval` and the tests run documents through the same call. It knows nothing of
 * BullMQ or HTTP: the caller checks the input and writes the record.
 */
export class DocumentRunner {
  readonly pipelineVersion: string;
  private readonly pipeline: Pipeline;
  private readonly promptVersions: Record<string, string>;

  constructor(config: Config, private readonly queue: QueueConfig, private readonly engine: Engine, private readonly extractor: TextExtractor) {
    this.pipeline = new Pipeline(config, queue, engine);
    this.pipelineVersion = pipelineVersion(config, queue);
    this.promptVersions = promptVersions(config, queue);
  }

  async run(input: DocumentRun): Promise<DocumentOutcome> {
    const textStarted = performance.now();
    input.onStage?.('text');
    const text = await this.extractor.extract(input.bytes, textLimits(this.queue), input.onOcr);
    const textMs = Math.round(performance.now() - textStarted);
    input.onText?.(text, textMs);
    const pipeline = await this.pipeline.run({ ...input, text });
    const record = makeRecord({
      identity: input.identity, queue: this.queue.name, pipelineVersion: this.pipelineVersion, prompts: this.promptVersions,
      model: this.engine.info, text, pipeline, textMs, totalMs: Math.round(performance.now() - (input.startedAt ?? textStarted)),
    });
    return { record, text, pipeline };
  }
}
