import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createCanvas } from '@napi-rs/canvas';
import type { z } from 'zod';
import type { OcrSchema } from '../config/queues.js';
import { libraryMissing } from '../config/nativeLibraries.js';
import { installedLanguages, languageFile } from '../config/ocrLanguages.js';
import { DocsiftError } from '../infra/errors.js';
import { childScript, ChildPool, isFailure, runtimeReservationMb } from './cappedChild.js';
import type { OcrEngineName, OcrEngineSetting, OcrReply, OcrRequest } from './ocrChild.js';

/** A queue's `ocr` section as the text stage takes it (src/config/queues.ts documents each). */
export type OcrSettings = z.infer<typeof OcrSchema>;

/**
 * Whether a page's text layer is unusable: fewer than minChars non-space characters (a scan,
 * or a scan with a stray page number), or mostly characters no font maps to text (U+FFFD,
 * private use, controls: a PDF whose fonts lack a ToUnicode map).
 */
export function needsOcr(text: string, minChars: number): boolean {
  const visible = text.replace(/\s+/g, '');
  if (visible.length < minChars) return true;
  const garbage = visible.match(/[\uFFFD\uE000-\uF8FF\u0000-\u001F]/g)?.length ?? 0;
  return garbage > visible.length * 0.3;
}

/** Workers for "auto": half the cores, since the model and the PDF parser want the rest. */
export function ocrWorkers(setting: number | 'auto'): number {
  return setting === 'auto' ? Math.max(1, Math.floor(os.availableParallelism() / 2)) : setting;
}

/** Which engine a queue's ocr.engine means on this machine, and why, for doctor. */
export function ocrEngine(setting: OcrEngineSetting): string {
  if (setting === 'tesseract.js') return 'engine tesseract.js (as configured)';
  const missing = libraryMissing('libtesseract');
  return missing ? `engine tesseract.js (libtesseract not found: ${missing})` : `engine libtesseract${setting === 'auto' ? ' (auto: found)' : ''}`;
}

/** tesseract.js grows its memory over many pages and advises recreating workers (~500 pages). */
const PAGES_PER_CHILD = 200;
/** What the OCR child maps besides V8's heap: WebAssembly memory, canvases, Node. */
const OCR_OUTSIDE_HEAP_MB = 384;

export interface OcrPage { text: string; confidence: number; rotation: number; engine: OcrEngineName }

/**
 * Address space an OCR process reserves without using it, measured once per process on an
 * uncapped one that has read a blank 32 x 32 image: VmData - VmRSS. RLIMIT_DATA counts
 * reservations, and this process holds V8 isolates (two with tesseract.js, which runs in a worker
 * thread) and WebAssembly memory: measured with tesseract.js 1,056 MB reserved at 138 MB RSS on
 * Node 20, 2,083 MB at 141 MB on Node 24, whose isolates reserve ~530 MB each; with libtesseract
 * 1,060 MB at 122 MB on Node 20. The cap is ocr.pageMemoryMb plus this, so
 * the setting means memory really used on both. Falls back to Node's own reservation without /proc.
 */
async function reservationOf(request: Omit<OcrRequest, 'id' | 'image' | 'page'>): Promise<number> {
  const blank = createCanvas(32, 32);
  blank.getContext('2d').fillStyle = '#ffffff';
  blank.getContext('2d').fillRect(0, 0, 32, 32);
  const child = fork(childScript('ocrChild.js'), [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  try {
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 60_000);
      child.once('message', () => { clearTimeout(timer); resolve(true); });
      child.once('exit', () => { clearTimeout(timer); resolve(false); });
      child.send({ ...request, id: 0, image: blank.toBuffer('image/png'), page: 0 } satisfies OcrRequest);
    });
    const status = answered ? fs.readFileSync(`/proc/${child.pid}/status`, 'utf8') : '';
    const data = /VmData:\s+(\d+)/.exec(status)?.[1];
    const rss = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return data && rss ? Math.ceil((Number(data) - Number(rss)) / 1024) : runtimeReservationMb();
  } catch {
    return runtimeReservationMb();
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * Page images to text in a bounded pool of child processes (ocrChild.ts), each under an OS
 * memory cap and killed past the page time limit. At most `workers` pages at once per process,
 * whatever the number of documents in flight.
 */
export class OcrPool {
  private pool: ChildPool<OcrRequest, OcrReply> | null = null;
  private workers = 1;

  private reservedMb: Promise<number> | null = null;
  private readonly dataDirs = new Map<string, string>();

  async recognise(image: Uint8Array, page: number, settings: OcrSettings): Promise<OcrPage> {
    this.workers = ocrWorkers(settings.workers);
    const request = { languages: settings.languages, dataDir: this.languageDir(settings), engine: settings.engine };
    this.reservedMb ??= reservationOf(request);
    const reserved = await this.reservedMb;
    this.pool ??= new ChildPool<OcrRequest, OcrReply>('ocrChild.js', () => this.workers, PAGES_PER_CHILD, (mb) => ({ capMb: mb + reserved, heapMb: Math.max(128, mb - OCR_OUTSIDE_HEAP_MB) }));
    const reply = await this.pool.run({ ...request, image, page }, { timeoutMs: settings.pageTimeoutMs, memoryMb: settings.pageMemoryMb });
    if (isFailure(reply)) {
      if (reply.kind === 'timeout') throw new DocsiftError('OCR_FAILED', `reading page ${page + 1} took longer than ${settings.pageTimeoutMs} ms (ocr.pageTimeoutMs)`);
      if (reply.outOfMemory) throw new DocsiftError('TOO_LARGE', `reading page ${page + 1} needed more than ${settings.pageMemoryMb} MB (ocr.pageMemoryMb)`);
      throw new DocsiftError('OCR_FAILED', `the OCR process exited (code ${reply.code}, signal ${reply.signal}) on page ${page + 1}`);
    }
    if (!reply.ok && reply.code === 'TOO_LARGE') throw new DocsiftError('TOO_LARGE', `reading page ${page + 1} needed more than ${settings.pageMemoryMb} MB (ocr.pageMemoryMb): ${reply.message}`);
    if (!reply.ok) throw new DocsiftError(reply.code, reply.message);
    return { text: reply.text, confidence: reply.confidence, rotation: reply.rotation, engine: reply.engine };
  }

  /**
   * The folder OCR processes read a language set from, made once and removed at close():
   * <code>.traineddata.gz links for tesseract.js and, where libtesseract may read, the unpacked
   * <code>.traineddata (5 MB for English) and osd.traineddata (10 MB). Made here, not in the OCR
   * processes: those are killed at their time and memory limits and would leave it behind.
   */
  private languageDir(settings: OcrSettings): string {
    const native = settings.engine !== 'tesseract.js' && libraryMissing('libtesseract') === null;
    const key = `${settings.languages.join('+')}${native ? ':native' : ''}`;
    const made = this.dataDirs.get(key);
    if (made) return made;
    const files = settings.languages.map((code) => {
      const file = languageFile(code);
      if (!file) throw new DocsiftError('OCR_FAILED', `no OCR data for language "${code}" (install @tesseract.js-data/${code}); installed: ${installedLanguages().join(', ') || 'none'}`);
      return { code, file };
    });
    const osd = languageFile('osd');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docsift-ocr-'));
    for (const { code, file } of files) fs.symlinkSync(file, path.join(dir, `${code}.traineddata.gz`));
    if (native) {
      for (const { code, file } of [...files, ...(osd ? [{ code: 'osd', file: osd }] : [])]) {
        fs.writeFileSync(path.join(dir, `${code}.traineddata`), zlib.gunzipSync(fs.readFileSync(file)));
      }
    }
    this.dataDirs.set(key, dir);
    return dir;
  }

  async close(): Promise<void> {
    await this.pool?.close();
    for (const dir of this.dataDirs.values()) fs.rmSync(dir, { recursive: true, force: true });
    this.dataDirs.clear();
  }
}
