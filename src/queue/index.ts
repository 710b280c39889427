export { connectRedis, createRedis, redactUrl, waitForRedis } from './connection.js';
export { createDocumentQueue, JOB_NAME, jobOptionsFor } from './documentQueue.js';
export type { DocumentQueue } from './documentQueue.js';
export { keys } from './keys.js';
export type { Keys } from './keys.js';
export { DocumentRef, JobPayload, documentIdFor, publishPipeline } from './payload.js';
export type { JobPayloadInput, PipelineInfo } from './payload.js';
export { createDocumentStore, documentRoots, FileDocumentStore, RedisDocumentStore, loadDocument, releaseDocument, storedRef } from './documentStore.js';
export type { DocumentStore, StagedDocument } from './documentStore.js';
