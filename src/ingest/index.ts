export { Enqueuer } from './enqueue.js';
export type { EnqueueInput, EnqueueOptions, EnqueueOutcome } from './enqueue.js';
export { documentStatus, findDocument, latestJob, PublicState, publicState, readResult, waitForDocuments } from './documentStatus.js';
export type { DocumentStatus } from './documentStatus.js';
