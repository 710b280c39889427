import { pipelineVersion, promptVersions, type Config, type QueueConfig } from '../config/index.js';
import type { Engine } from '../model/index.js';
import { textLimits, type ExtractedText, type TextExtractor } from '../text/index.js';
import { Pipeline, type PipelineInput } from './pipeline.js';
import { makeRecord, type DocumentIdentity, type ResultRecord } from './record.js';

/** The pipeline's options (documentType, signal, refuseChunks, onlyFields), and the document's bytes instead of its text. */
export interface DocumentRun extends Omit<PipelineInput, 'text' | 'onStage'> {
  /** What the document is and where it came from; the caller checked it. */
  identity: DocumentIdentity;
  bytes: Uint8Array;
  /** performance.now() when the caller started on the document; the record's totalMs counts from it. */
  startedAt?: number;
  /** Called as each stage starts, for job progress and logs. */
  onStage?: (stage: 'text' | 'classify' | 'extract', detail?: Record<string, unknown>) => void;
  /** Called as OCR finishes each page of a scan (job progress). */
  onOcr?: (done: number, total: number) => void;
  /** Called when the text is read, before the model stage (long jobs show it while they run). */
  onText?: (text: ExtractedText, textMs: number) => void;
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

  async run(input: DocumentRun): Promise<ResultRecord> {
    const textStarted = performance.now();
    input.onStage?.('text');
    const text = await this.extractor.extract(input.bytes, textLimits(this.queue), input.onOcr);
    const textMs = Math.round(performance.now() - textStarted);
    input.onText?.(text, textMs);
    const pipeline = await this.pipeline.run({ ...input, text });
    return makeRecord({
      identity: input.identity, queue: this.queue.name, pipelineVersion: this.pipelineVersion, prompts: this.promptVersions,
      model: this.engine.info, text, pipeline, textMs, totalMs: Math.round(performance.now() - (input.startedAt ?? textStarted)),
    });
  }
}
