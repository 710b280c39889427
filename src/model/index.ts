export { ModelEngine, checkModelFile, createLlama } from './engine.js';
export { hashFile } from './hashFile.js';
export type { Answer, AskOptions, ChatTurn, Engine, EngineOptions, EngineStats, ModelInfo, ModelSequence } from './engine.js';
export { makeValidator, toGrammarSchema } from './grammarSchema.js';
export type { Validator } from './grammarSchema.js';
export { makeLlamaModel, TEST_SHAPE } from './gguf/makeLlamaModel.js';
export type { LlamaShape, MakeModelOptions } from './gguf/makeLlamaModel.js';
export { autoSequences, CATALOGUE, inspectModel, localModels, pullModel } from './models.js';
export type { ModelInspection } from './models.js';
