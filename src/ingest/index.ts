export { Enqueuer } from './enqueue.js';
export type { EnqueueInput, EnqueueOptions, EnqueueOutcome } from './enqueue.js';
export { documentStatus, findDocument, latestJob, publicState, readResult, waitForDocuments } from './documentStatus.js';
export type { DocumentStatus, PublicState } from './documentStatus.js';
