import koffi from 'koffi';

/**
 * Native libraries docsift may call through koffi (a foreign-function interface with prebuilt
 * binaries on npm), each from one Debian package. Only capped child processes call them (OCR,
 * PDF): a native fault or a hostile file ends one document, not a worker.
 */
export const NATIVE_LIBRARIES = {
  /** Debian's libtesseract5 and its leptonica, what the `tesseract` command runs. */
  libtesseract: { files: { tesseract: 'libtesseract.so.5', leptonica: 'liblept.so.5' }, apt: 'libtesseract5' },
  /** poppler's C interface (the `pdftotext` command's library), the GLib it is written in and cairo, which it draws with. */
  poppler: { files: { poppler: 'libpoppler-glib.so.8', glib: 'libglib-2.0.so.0', gobject: 'libgobject-2.0.so.0', cairo: 'libcairo.so.2' }, apt: 'libpoppler-glib8' },
} as const;

export type NativeLibrary = keyof typeof NATIVE_LIBRARIES;

const missing = new Map<NativeLibrary, string | null>();

/**
 * Null when the library loads on this machine, else why not (for config checks, "auto" and
 * doctor). Loading it is a dlopen (~10 ms); the answer is kept for the process.
 */
export function libraryMissing(library: NativeLibrary): string | null {
  if (missing.has(library)) return missing.get(library)!;
  const { files, apt } = NATIVE_LIBRARIES[library];
  let why: string | null = null;
  for (const name of Object.values(files)) {
    try {
      koffi.load(name);
    } catch (err) {
      // koffi says "Failed to load shared library: <dlerror without the name>".
      why ??= `${name}: ${(err as Error).message.replace(/^Failed to load shared library: /, '')} (Debian: apt-get install ${apt})`;
    }
  }
  missing.set(library, why);
  return why;
}
