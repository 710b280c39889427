export { Pipeline } from './pipeline.js';
export type { PipelineInput, PipelineOutput } from './pipeline.js';
export { CLASSIFY_QUESTION, documentText, extractQuestion, renderDocument, renderExtractPrompt, renderReask, renderSystemPrompt } from './prompts.js';
export type { ResultRecord, FailureRecord } from './record.js';
export { checkRules, ibanValid, vatIdValid } from './rules.js';
export { groundFields } from './grounding.js';
export type { Grounding } from './grounding.js';
export type { CheckResult } from './rules.js';
export { normaliseCurrency, normaliseDate, normaliseFields, normaliseNumber } from './normalise.js';
