import { getQueue, libraryMissing, loadConfig } from '../../config/index.js';
import { ConfigError, toDocsiftError } from '../../infra/errors.js';
import { readCliFile } from '../args.js';
import { detectFormat, isMail, sniffFormat, TextExtractor, textLimits, type MailParts, type PdfEngineName } from '../../text/index.js';

/**
 * What the text stage sees, for operators debugging a document: the same extractor and the
 * same limits as the queue's workers. One bad file never stops the others.
 */
export async function extractTextCommand(files: string[], options: { json: boolean; queue: string; pdfEngine?: PdfEngineName }): Promise<number> {
  const config = loadConfig();
  const queue = getQueue(config, options.queue);
  const missing = options.pdfEngine === 'poppler' ? libraryMissing('poppler') : null;
  if (missing) throw new ConfigError('command line', '--pdf-engine', `poppler cannot be loaded here: ${missing}`);
  const limits = { ...textLimits(queue), ...(options.pdfEngine ? { pdfEngine: options.pdfEngine } : {}) };
  const extractor = new TextExtractor();
  let failed = 0;
  try {
    for (const file of files) {
      try {
        const bytes = await readCliFile(file);
        // A mail's parts are documents of their own: its body is shown, its attachments listed.
        const { text, mail } = isMail(sniffFormat(bytes)) ? await extractor.readMail(bytes, limits) : { text: await extractor.extract(bytes, limits), mail: undefined };
        const attachments = mail ? describeAttachments(mail) : undefined;
        if (options.json) {
          process.stdout.write(JSON.stringify({ file, format: text.format, ...(text.format === 'pdf' ? { pdfEngine: limits.pdfEngine } : {}), pages: text.pages, sources: text.sources, ocr: text.ocr, chars: text.chars, warnings: text.warnings, text: text.pages.join('\n\n'), ...(attachments ? { attachments } : {}) }) + '\n');
        } else {
          process.stdout.write(`== ${file} (${text.format}${text.format === 'pdf' ? ` read by ${limits.pdfEngine}` : ''}, ${text.pages.length} page(s), ${text.chars} chars)\n`);
          text.warnings.forEach((w) => process.stdout.write(`!! ${w}\n`));
          text.pages.forEach((page, i) => process.stdout.write(`-- ${mail ? 'body' : `page ${i + 1}`}${text.sources[i] === 'ocr' ? ' (OCR)' : ''}\n${page}\n`));
          attachments?.forEach((a, i) => process.stdout.write(`-- attachment ${i + 1}: ${a.filename} (${a.contentType}, ${a.bytes} bytes): ${a.inline ? 'shown in the body, not read' : a.format ?? a.error}\n`));
        }
      } catch (err) {
        const e = toDocsiftError(err);
        failed++;
        if (options.json) process.stdout.write(JSON.stringify({ file, error: { code: e.code, message: e.message } }) + '\n');
        else process.stdout.write(`== ${file}\n!! ${e.code}: ${e.message}\n`);
      }
    }
  } finally {
    await extractor.close();
  }
  return failed > 0 ? 1 : 0;
}

/** Each attachment as the worker would treat it: its format, or why it would not be read. */
function describeAttachments(mail: MailParts): Array<{ filename: string; contentType: string; bytes: number; inline: boolean; format?: string; error?: string }> {
  return mail.attachments.map((a) => {
    const base = { filename: a.filename, contentType: a.contentType, bytes: a.bytes.length, inline: a.inline };
    try {
      return { ...base, format: detectFormat(a.bytes) };
    } catch (err) {
      const e = toDocsiftError(err);
      return { ...base, error: `${e.code}: ${e.message}` };
    }
  });
}
