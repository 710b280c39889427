import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import koffi from 'koffi';

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

/** The machine's tesseract (Debian's libtesseract5 and its leptonica), read through koffi by the OCR children. */
export const OCR_LIBRARIES = { tesseract: 'libtesseract.so.5', leptonica: 'liblept.so.5' } as const;
let missing: string | null | undefined;

/**
 * Null when libtesseract loads on this machine, else why not: for ocr.engine's check, "auto"
 * and doctor. Loading it is a dlopen (~10 ms); the answer is kept for the process.
 */
export function libtesseractMissing(): string | null {
  if (missing !== undefined) return missing;
  missing = null;
  for (const name of Object.values(OCR_LIBRARIES)) {
    try {
      koffi.load(name);
    } catch (err) {
      // koffi says "Failed to load shared library: <dlerror without the name>".
      missing ??= `${name}: ${(err as Error).message.replace(/^Failed to load shared library: /, '')} (Debian: apt-get install libtesseract5)`;
    }
  }
  return missing;
}
