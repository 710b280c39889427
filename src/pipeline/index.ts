export { Pipeline } from './pipeline.js';
export type { PipelineInput, PipelineOutput } from './pipeline.js';
export { documentText, renderClassifyPrompt, renderExtractPrompt, renderReask } from './prompts.js';
export type { ResultRecord, FailureRecord } from './record.js';
