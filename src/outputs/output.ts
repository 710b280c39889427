import type { ResultRecord } from '../pipeline/index.js';

/**
 * A place results are written. Writes are idempotent, keyed by document id: a retried or
 * re-delivered job overwrites its own record and never adds a second one.
 */
export interface ResultOutput {
  readonly name: string;
  write(record: ResultRecord, context: OutputContext): Promise<void>;
}

/** What the producer asked for beyond the record itself. */
export interface OutputContext {
  /** A per-document callback URL from the API. */
  callbackUrl?: string;
  /**
   * The job's log lines of a job that ran too briefly to have sent them (one entry); the Redis
   * output appends it to the BullMQ job's log in the same round trip as the record.
   */
  jobLog?: { jobKey: string; line: string };
}
