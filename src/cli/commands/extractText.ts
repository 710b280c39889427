import fs from 'node:fs/promises';
import { getQueue, loadConfig } from '../../config/index.js';
import { DocsiftError, toDocsiftError } from '../../infra/errors.js';
import { TextExtractor, textLimits } from '../../text/index.js';

/**
 * What the text stage sees, for operators debugging a document: the same extractor and the
 * same limits as the queue's workers. One bad file never stops the others.
 */
export async function extractTextCommand(files: string[], options: { json: boolean; queue: string }): Promise<number> {
  const config = loadConfig();
  const queue = getQueue(config, options.queue);
  const extractor = new TextExtractor();
  let failed = 0;
  try {
    for (const file of files) {
      try {
        const bytes = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
          throw new DocsiftError('UNREADABLE_FILE', `${file}: ${err.code ?? err.message}`);
        });
        const text = await extractor.extract(bytes, textLimits(queue));
        if (options.json) {
          process.stdout.write(JSON.stringify({ file, format: text.format, pages: text.pages, sources: text.sources, ocr: text.ocr, chars: text.chars, warnings: text.warnings, text: text.pages.join('\n\n') }) + '\n');
        } else {
          process.stdout.write(`== ${file} (${text.format}, ${text.pages.length} page(s), ${text.chars} chars)\n`);
          text.warnings.forEach((w) => process.stdout.write(`!! ${w}\n`));
          text.pages.forEach((page, i) => process.stdout.write(`-- page ${i + 1}${text.sources[i] === 'ocr' ? ' (OCR)' : ''}\n${page}\n`));
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
