export { Enqueuer } from './enqueue.js';
export type { EnqueueInput, EnqueueOptions, EnqueueOutcome } from './enqueue.js';
export { documentStatus, latestJob, readResult, waitForDocuments } from './documentStatus.js';
export type { DocumentStatus } from './documentStatus.js';
