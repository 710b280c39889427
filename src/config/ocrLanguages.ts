import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const packageRequire = createRequire(import.meta.url);

/**
 * The traineddata of a language, from its @tesseract.js-data package (the "best_int" model:
 * the accurate LSTM, integer-quantised); null when the package is not installed.
 */
export function languageFile(code: string): string | null {
  try {
    const dir = path.dirname(packageRequire.resolve(`@tesseract.js-data/${code}/package.json`));
    const file = path.join(dir, '4.0.0_best_int', `${code}.traineddata.gz`);
    return fs.existsSync(file) ? file : null;
  } catch {
    return null;
  }
}

/** Languages installed as @tesseract.js-data packages (for doctor and config errors). */
export function installedLanguages(): string[] {
  try {
    const scope = path.dirname(path.dirname(packageRequire.resolve('@tesseract.js-data/eng/package.json')));
    // osd is orientation detection's data, not a language (libtesseract reads it when installed).
    return fs.readdirSync(scope).filter((code) => code !== 'osd' && languageFile(code) !== null).sort();
  } catch {
    return [];
  }
}
