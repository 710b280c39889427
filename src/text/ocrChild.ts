/**
 * Child process that reads page images with tesseract: the machine's libtesseract through koffi
 * where it is installed and the queue allows it, else tesseract.js (WebAssembly). It runs
 * outside the worker because recognition holds a core for seconds per page and because a hostile
 * image can exhaust memory: the parent starts it under an OS memory cap and kills it on timeout.
 * Both engines read the same language data, the @tesseract.js-data packages in node_modules, from
 * the folder the pool prepares (OcrPool); nothing is downloaded and this process writes nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createCanvas, loadImage, type Canvas } from '@napi-rs/canvas';
import { createWorker, type Worker } from 'tesseract.js';
import UTIF from 'utif2';
import { imageKind, imagePages, jpegOrientation } from './images.js';
import { libraryMissing } from '../config/nativeLibraries.js';
import { LibTesseract, type Reading } from './libtesseract.js';

/** auto: libtesseract where it loads, else tesseract.js. */
export type OcrEngineSetting = 'auto' | 'libtesseract' | 'tesseract.js';
export type OcrEngineName = Exclude<OcrEngineSetting, 'auto'>;

export interface OcrRequest {
  id: number;
  image: Uint8Array;
  /** For a TIFF: which page. */
  page: number;
  /** Language codes, read together. */
  languages: string[];
  /** Where their data is (OcrPool's languageDir): <code>.traineddata.gz, and <code>.traineddata where libtesseract may read. */
  dataDir: string;
  engine: OcrEngineSetting;
}

export type OcrReply =
  | { id: number; ok: true; text: string; confidence: number; rotation: number; width: number; height: number; engine: OcrEngineName }
  | { id: number; ok: false; code: 'CORRUPT_DOCUMENT' | 'OCR_FAILED' | 'TOO_LARGE'; message: string };

/** Below this mean word confidence at 0°, the page is read turned too (recognise). */
const UPRIGHT_CONFIDENCE = 60;
/** Longer sides are scaled down: more pixels cost time without adding words at invoice print sizes. */
const MAX_SIDE = 5000;

/**
 * Grey, with mid-greys pulled toward black (x -> x^2 on 0..1): light grey small print and
 * coloured text on tinted table rows are otherwise lost by tesseract's binarisation. Measured on
 * the invoice corpus at 200 dpi: word recall 0.66 plain, 0.95 with this (AWS invoice, grey footnotes).
 */
const GAMMA = 2;
const GAMMA_TABLE = new Uint8Array(256).map((_, i) => Math.round(255 * (i / 255) ** GAMMA));

/** A decoded page that an engine reads at a rotation; close() frees native pixels. */
interface Page {
  width: number;
  height: number;
  read(rotation: number): Promise<Reading>;
  /** How far to turn the page clockwise, by tesseract's OSD, where the engine has it for this page. */
  orientation?(): { rotation: number; confidence: number } | null;
  close(): void;
}

/** Below this OSD confidence its answer is not used (right answers on the corpus scans: 6.5-15.2). */
const OSD_CONFIDENCE = 2;

interface Engine {
  name: OcrEngineName;
  open(request: OcrRequest): Promise<Page>;
  end(): Promise<void>;
}

// Debian's libtesseract runs OpenMP threads, as many as cores, in each OCR process: with a pool
// of processes they fight over the cores (the CLI with default threads on 2 busy cores: 5x
// slower, SPIKES.md). One thread each; the pool is the parallelism. Read when the library loads.
process.env.OMP_THREAD_LIMIT = '1';

let engine: { key: string; engine: Engine } | null = null;

async function engineFor(request: OcrRequest): Promise<Engine> {
  const missing = request.engine === 'tesseract.js' ? 'not chosen' : libraryMissing('libtesseract');
  if (missing && request.engine === 'libtesseract') throw new Error(`ocr.engine is libtesseract, which cannot be loaded here: ${missing}`);
  const name: OcrEngineName = missing ? 'tesseract.js' : 'libtesseract';
  const key = `${name}:${request.languages.join('+')}:${request.dataDir}`;
  if (engine?.key === key) return engine.engine;
  await engine?.engine.end();
  engine = null;
  engine = { key, engine: name === 'libtesseract' ? native(request) : await wasm(request) };
  return engine.engine;
}

/** tesseract.js reads <langPath>/<code>.traineddata.gz and writes nothing there (cacheMethod none). */
async function wasm(request: OcrRequest): Promise<Engine> {
  const w: Worker = await createWorker(request.languages.join('+'), 1 /* LSTM */, { langPath: request.dataDir, gzip: true, cacheMethod: 'none' });
  return {
    name: 'tesseract.js',
    async open(request) {
      const canvas = await decode(request);
      return {
        width: canvas.width, height: canvas.height, close: () => {},
        // Binary PGM: leptonica reads it as it is, where a PNG of a 300 dpi page cost an encode here
        // and a decode in WebAssembly (measured: 0.81 pages/s with PNG, 1.28 with PGM on 2 cores).
        read: async (rotation) => {
          const g = grey(canvas, rotation);
          const { data } = await w.recognize(Buffer.concat([Buffer.from(`P5\n${g.width} ${g.height}\n255\n`, 'latin1'), g.pixels]));
          return { text: data.text, confidence: data.confidence };
        },
      };
    },
    end: async () => { await w.terminate(); },
  };
}

/**
 * libtesseract reads <code>.traineddata (unpacked by the pool), and osd.traineddata for
 * orientation when it is there. PNG and JPEG pages are decoded by leptonica; TIFF, WebP, a JPEG
 * turned by its EXIF tag and pages to scale down go through the canvas, as for tesseract.js.
 */
function native(request: OcrRequest): Engine {
  const withOsd = fs.existsSync(path.join(request.dataDir, 'osd.traineddata'));
  const lib = new LibTesseract(request.dataDir, request.languages.join('+'), withOsd);
  return {
    name: 'libtesseract',
    async open(request) {
      const kind = imageKind(request.image);
      const size = kind === 'png' || kind === 'jpeg' ? imagePages(request.image, kind, 1)[0]! : null;
      const plain = size && Math.max(size.width, size.height) <= MAX_SIDE && (kind === 'png' || jpegOrientation(request.image) === 1);
      const pix = plain ? lib.decode(request.image, GAMMA) : null;
      if (pix) return { width: size!.width, height: size!.height, read: async (rotation) => lib.readPix(pix, rotation), orientation: () => lib.orientation(pix), close: () => lib.free(pix) };
      const canvas = await decode(request);
      return {
        width: canvas.width, height: canvas.height, close: () => {},
        read: async (rotation) => {
          const g = grey(canvas, rotation);
          return lib.readGrey(g.pixels, g.width, g.height);
        },
      };
    },
    end: async () => lib.end(),
  };
}

/**
 * Decodes the page and scales it to at most MAX_SIDE. A JPEG's EXIF orientation (phones save
 * sideways photos with a tag instead of turning the pixels) is applied by the decoder: measured,
 * @napi-rs/canvas's loadImage returns a tag-6 550 x 425 JPEG as 425 x 550, upright.
 */
async function decode(request: OcrRequest): Promise<Canvas> {
  if (imageKind(request.image) === 'tiff') {
    const buf = Buffer.from(request.image.buffer, request.image.byteOffset, request.image.length);
    const ifd = UTIF.decode(buf).filter((i) => i['t256'] && i['t257'])[request.page];
    if (!ifd) throw new Error(`no page ${request.page + 1}`);
    UTIF.decodeImage(buf, ifd);
    const rgba = UTIF.toRGBA8(ifd);
    const canvas = createCanvas(ifd.width, ifd.height);
    const ctx = canvas.getContext('2d');
    const data = ctx.createImageData(ifd.width, ifd.height);
    data.data.set(rgba);
    ctx.putImageData(data, 0, 0);
    return scaled(canvas);
  }
  const image = await loadImage(Buffer.from(request.image.buffer, request.image.byteOffset, request.image.length));
  const source = createCanvas(image.width, image.height);
  source.getContext('2d').drawImage(image, 0, 0);
  return scaled(source);
}

function scaled(source: Canvas): Canvas {
  const scale = Math.min(1, MAX_SIDE / Math.max(source.width, source.height));
  if (scale === 1) return source;
  const out = createCanvas(Math.round(source.width * scale), Math.round(source.height * scale));
  out.getContext('2d').drawImage(source, 0, 0, out.width, out.height);
  return out;
}


/** The canvas turned clockwise by rotation, as grey bytes with GAMMA applied. */
function grey(canvas: Canvas, rotation: number): { pixels: Buffer; width: number; height: number } {
  let out = canvas;
  if (rotation !== 0) {
    const swap = rotation === 90 || rotation === 270;
    out = createCanvas(swap ? canvas.height : canvas.width, swap ? canvas.width : canvas.height);
    const ctx = out.getContext('2d');
    ctx.translate(out.width / 2, out.height / 2);
    ctx.rotate((rotation * Math.PI) / 180);
    ctx.drawImage(canvas, -canvas.width / 2, -canvas.height / 2);
  }
  const px = out.getContext('2d').getImageData(0, 0, out.width, out.height).data;
  const pixels = Buffer.allocUnsafe(out.width * out.height);
  for (let i = 0, j = 0; i < px.length; i += 4, j++) pixels[j] = GAMMA_TABLE[(px[i]! * 77 + px[i + 1]! * 150 + px[i + 2]! * 29) >> 8]!;
  return { pixels, width: out.width, height: out.height };
}

/**
 * Orientation: read upright first; only a page that reads badly (mean confidence under 60) is
 * read turned as well, and the most confident reading wins: upright pages, the common case, cost
 * one pass, and a turned page's wrong readings score far lower than its right one. Which turns:
 * the one tesseract's OSD names, where libtesseract has the page decoded (OSD needs the legacy
 * engine, which tesseract.js's Node core has but its LSTM-only mode does not load), else 90°,
 * 180° and 270°. A noisy upright scan (confidence 53-61) thus costs one OSD pass, not three readings. Small skew (a page fed in at 1-2°) tesseract reads as it is:
 * its rotateAuto pass cost 20% of the time and no recall on the corpus scans (0.980 without).
 */
async function recognise(request: OcrRequest): Promise<OcrReply> {
  const e = await engineFor(request);
  let page: Page;
  try {
    page = await e.open(request);
  } catch (err) {
    const message = (err as Error).message;
    // Under the OS memory cap Skia cannot allocate the pixels (measured: "Create skia surface
    // failed" for an 8000 x 8000 PNG under 512 MB): the page is too large, not corrupt.
    if (/skia surface|alloc|memory/i.test(message)) return { id: request.id, ok: false, code: 'TOO_LARGE', message };
    return { id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: `the image cannot be decoded: ${message}` };
  }
  try {
    let best: Reading & { rotation: number } = { ...(await page.read(0)), rotation: 0 };
    if (best.confidence < UPRIGHT_CONFIDENCE) {
      // OSD narrows the other readings to the one it names (none when it says upright); without
      // it (tesseract.js, pages decoded by the canvas, too little text for OSD) all three are read.
      const osd = page.orientation?.() ?? null;
      const others = !osd || osd.confidence < OSD_CONFIDENCE ? [90, 180, 270] : osd.rotation ? [osd.rotation] : [];
      for (const rotation of others) {
        const reading = await page.read(rotation);
        if (reading.confidence > best.confidence) best = { ...reading, rotation };
      }
    }
    return { id: request.id, ok: true, ...best, width: page.width, height: page.height, engine: e.name };
  } finally {
    page.close();
  }
}

process.on('message', (request: OcrRequest) => {
  recognise(request).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: request.id, ok: false, code: 'OCR_FAILED', message: (err as Error)?.message ?? String(err) } satisfies OcrReply),
  );
});
// The parent going away must not leave a recogniser running.
process.on('disconnect', () => process.exit(0));
