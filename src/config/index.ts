export * from './env.js';
export * from './loadConfig.js';
export type { ClassifyPrompt, DocTypePrompt, Prompts } from './prompts.js';
export { checkSchemaSubset, loadPrompts } from './prompts.js';
export type { QueueConfig } from './queues.js';
export { OcrSchema, QueueFileSchema, loadQueues } from './queues.js';
export { installedLanguages, languageFile } from './ocrLanguages.js';
export { NORMALISERS, Rule, RulesFile } from './rules.js';
export type { Normaliser } from './rules.js';
