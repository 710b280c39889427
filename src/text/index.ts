export { detectFormat } from './detectFormat.js';
export type { DocumentFormat } from './detectFormat.js';
export { TextExtractor, decodeText, textLimits } from './textExtractor.js';
export type { ExtractedText, TextLimits } from './textExtractor.js';
