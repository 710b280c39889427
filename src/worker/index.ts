export { DocumentWorker } from './documentWorker.js';
export type { DocumentWorkerDeps } from './documentWorker.js';
export { startWorker } from './startWorker.js';
export type { RunningWorker } from './startWorker.js';
