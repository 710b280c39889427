/**
 * The tesseract library installed on the machine (Debian's libtesseract5, what the `tesseract`
 * command runs), called in-process through koffi, a foreign-function interface with prebuilt
 * binaries on npm. Only OCR child processes call it (ocrChild.ts; the worker only checks that it
 * loads): they are the ones under an OS memory cap and killed past the page time limit, so a
 * native fault ends one page, not a worker.
 *
 * Why it exists beside tesseract.js: the same model reads a page in 1.35 s here and 2.0 s in
 * tesseract.js's WebAssembly (one core, six corpus scans at 300 dpi; docs/OCR.md), and with the
 * model loaded once per process it reads faster than the CLI, which loads it per page.
 */
import koffi from 'koffi';
import { libraryMissing, NATIVE_LIBRARIES } from '../config/nativeLibraries.js';

type Pointer = unknown;

interface Bindings {
  create(): Pointer;
  init(handle: Pointer, dataPath: string, languages: string, oem: number): number;
  setImage(handle: Pointer, data: Uint8Array, width: number, height: number, bytesPerPixel: number, bytesPerLine: number): void;
  setPix(handle: Pointer, pix: Pointer): void;
  text(handle: Pointer): Pointer;
  freeText(text: Pointer): void;
  meanConfidence(handle: Pointer): number;
  clear(handle: Pointer): void;
  end(handle: Pointer): void;
  free(handle: Pointer): void;
  setPageSegMode(handle: Pointer, mode: number): void;
  detectOrientation(handle: Pointer, degrees: number[], confidence: number[], script: unknown[], scriptConfidence: number[]): number;
  pixRead(data: Uint8Array, size: number): Pointer | null;
  pixTo8(pix: Pointer, colormap: number): Pointer | null;
  pixGamma(dest: Pointer, source: Pointer, gamma: number, min: number, max: number): Pointer | null;
  pixRotate(pix: Pointer, quads: number): Pointer | null;
  pixFree(pix: Pointer[]): void;
}

let bindings: Bindings | null = null;

function load(): Bindings {
  const missing = libraryMissing('libtesseract');
  if (missing) throw new Error(`libtesseract cannot be loaded: ${missing}`);
  if (bindings) return bindings;
  const tess = koffi.load(NATIVE_LIBRARIES.libtesseract.files.tesseract);
  const lept = koffi.load(NATIVE_LIBRARIES.libtesseract.files.leptonica);
  bindings = {
    create: tess.func('void *TessBaseAPICreate()'),
    init: tess.func('int TessBaseAPIInit2(void *h, const char *datapath, const char *language, int oem)'),
    setImage: tess.func('void TessBaseAPISetImage(void *h, const uint8_t *data, int width, int height, int bpp, int bpl)'),
    setPix: tess.func('void TessBaseAPISetImage2(void *h, void *pix)'),
    text: tess.func('void *TessBaseAPIGetUTF8Text(void *h)'),
    freeText: tess.func('void TessDeleteText(void *text)'),
    meanConfidence: tess.func('int TessBaseAPIMeanTextConf(void *h)'),
    clear: tess.func('void TessBaseAPIClear(void *h)'),
    end: tess.func('void TessBaseAPIEnd(void *h)'),
    free: tess.func('void TessBaseAPIDelete(void *h)'),
    setPageSegMode: tess.func('void TessBaseAPISetPageSegMode(void *h, int mode)'),
    detectOrientation: tess.func('int TessBaseAPIDetectOrientationScript(void *h, _Out_ int *deg, _Out_ float *conf, _Out_ const char **script, _Out_ float *sconf)'),
    pixRead: lept.func('void *pixReadMem(const uint8_t *data, size_t size)'),
    pixTo8: lept.func('void *pixConvertTo8(void *pix, int cmapflag)'),
    pixGamma: lept.func('void *pixGammaTRC(void *pixd, void *pixs, float gamma, int minval, int maxval)'),
    pixRotate: lept.func('void *pixRotateOrth(void *pix, int quads)'),
    pixFree: lept.func('void pixDestroy(_Inout_ void **pix)'),
  };
  return bindings;
}

export interface Reading { text: string; confidence: number }

/**
 * One tesseract instance with its languages loaded (LSTM engine). Not thread-safe and not
 * re-entrant: the OCR child reads one page at a time.
 */
export class LibTesseract {
  private readonly lib: Bindings;
  private readonly handle: Pointer;
  /** A second instance for orientation detection (OSD, the legacy engine's data), when dataPath has osd.traineddata. */
  private readonly osd: Pointer | null = null;

  /** dataPath holds <code>.traineddata for each language; languages as tesseract takes them ("eng+fra"). */
  constructor(dataPath: string, languages: string, withOsd: boolean) {
    this.lib = load();
    this.handle = this.lib.create();
    if (this.lib.init(this.handle, dataPath, languages, 1 /* OEM_LSTM_ONLY */) !== 0) {
      this.lib.free(this.handle);
      throw new Error(`libtesseract could not load the languages ${languages} from ${dataPath}`);
    }
    if (withOsd) {
      const osd = this.lib.create();
      if (this.lib.init(osd, dataPath, 'osd', 0 /* OEM_TESSERACT_ONLY */) === 0) {
        this.lib.setPageSegMode(osd, 0 /* PSM_OSD_ONLY */);
        this.osd = osd;
      } else {
        this.lib.free(osd);
      }
    }
  }

  /**
   * How far a page must be turned clockwise to stand upright, by tesseract's orientation
   * detection, with its confidence; null without OSD data or when it finds too little text.
   * Measured on JPEG scans of four corpus invoices turned 0/90/180/270: all sixteen right, with
   * confidence 6.5-15.2, in 0.3-0.5 s a page (a full reading takes 1-2 s).
   */
  orientation(pix: Pointer): { rotation: number; confidence: number } | null {
    if (!this.osd) return null;
    const degrees = [0];
    const confidence = [0];
    this.lib.setPix(this.osd, pix);
    const found = this.lib.detectOrientation(this.osd, degrees, confidence, [null], [0]);
    this.lib.clear(this.osd);
    // tesseract reports the page's clockwise rotation; turning it back is the rest of the circle.
    return found ? { rotation: (360 - degrees[0]!) % 360, confidence: confidence[0]! } : null;
  }

  /**
   * An encoded PNG or JPEG decoded by leptonica (what the tesseract CLI does), grey with gamma
   * applied: the decode, grey and gamma cost ~60 ms natively against ~200 ms through a canvas
   * and JavaScript. Null when leptonica cannot decode it (the caller takes the canvas path,
   * which names the error).
   */
  decode(bytes: Uint8Array, gamma: number): Pointer | null {
    const pix = this.lib.pixRead(bytes, bytes.length);
    if (!pix) return null;
    const grey = this.lib.pixTo8(pix, 0);
    this.lib.pixFree([pix]);
    if (!grey) return null;
    // leptonica maps x to 255 (x / 255)^(1 / gamma): 1 / gamma here is the exponent the caller means.
    this.lib.pixGamma(grey, grey, 1 / gamma, 0, 255);
    return grey;
  }

  /** Reads a decoded page turned clockwise by rotation (0, 90, 180, 270). */
  readPix(pix: Pointer, rotation: number): Reading {
    const turned = rotation ? this.lib.pixRotate(pix, rotation / 90) : pix;
    if (!turned) throw new Error('leptonica could not turn the page');
    try {
      this.lib.setPix(this.handle, turned);
      return this.read();
    } finally {
      if (turned !== pix) this.lib.pixFree([turned]);
    }
  }

  /** Reads 8-bit grey pixels, one byte each, row after row. */
  readGrey(grey: Uint8Array, width: number, height: number): Reading {
    this.lib.setImage(this.handle, grey, width, height, 1, width);
    return this.read();
  }

  free(pix: Pointer): void {
    this.lib.pixFree([pix]);
  }

  end(): void {
    for (const handle of this.osd ? [this.handle, this.osd] : [this.handle]) {
      this.lib.end(handle);
      this.lib.free(handle);
    }
  }

  private read(): Reading {
    const text = this.lib.text(this.handle);
    try {
      return { text: text ? (koffi.decode(text, 'char', -1) as string) : '', confidence: this.lib.meanConfidence(this.handle) };
    } finally {
      if (text) this.lib.freeText(text);
      this.lib.clear(this.handle);
    }
  }
}
