export { detectFormat, isMail, sniffFormat } from './detectFormat.js';
export type { DocumentFormat } from './detectFormat.js';
export { decodeText } from './decode.js';
export { TextExtractor, defaultTextLimits, plainText, textLimits } from './textExtractor.js';
export type { ExtractedText, OcrProgress, TextLimits } from './textExtractor.js';
export { ocrEngine, ocrWorkers } from './ocr.js';
export type { OcrSettings } from './ocr.js';
export { bodyDocument } from './mail.js';
export type { MailAttachment, MailHeaders, MailParts } from './mail.js';
