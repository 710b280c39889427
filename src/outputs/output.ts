import type { ResultRecord } from '../pipeline/index.js';

/**
 * A place results are written. Writes are idempotent, keyed by document id: a retried or
 * re-delivered job overwrites its own record and never adds a second one.
 */
export interface ResultOutput {
  readonly name: string;
  write(record: ResultRecord): Promise<void>;
}
