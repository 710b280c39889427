import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DocsiftError } from '../infra/errors.js';
import { detectFormat, type DocumentFormat } from './detectFormat.js';
import type { PdfReply, PdfRequest } from './pdfChild.js';

export interface ExtractedText {
  format: DocumentFormat;
  /** Text of each page (one page for text and markdown unless split by form feeds). */
  pages: string[];
  chars: number;
  warnings: string[];
}

export interface TextLimits {
  maxBytes: number;
  maxPages: number;
  timeoutMs: number;
  memoryMb: number;
}

/** A queue file's limits as the extractor takes them. */
export function textLimits(limits: { maxBytes: number; maxPages: number; textTimeoutMs: number; textMemoryMb: number }): TextLimits {
  return { maxBytes: limits.maxBytes, maxPages: limits.maxPages, timeoutMs: limits.textTimeoutMs, memoryMb: limits.textMemoryMb };
}

/** What a parser maps besides V8's heap: Node, pdf.js, buffers (measured ~150 MB on an invoice). */
const OUTSIDE_HEAP_MB = 192;

/** A child is replaced after this many documents so that whatever pdf.js keeps does not pile up. */
const DOCUMENTS_PER_CHILD = 200;

/**
 * The compiled child script. Under vitest this module runs from src/*.ts, but a forked child
 * needs JavaScript: `npm test` compiles to dist/ first, so both cases find dist/.../pdfChild.js.
 */
function childScript(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return path.join(path.dirname(here), 'pdfChild.js');
  const compiled = path.join(path.dirname(here), '..', '..', 'dist', 'src', 'text', 'pdfChild.js');
  if (!fs.existsSync(compiled)) throw new Error(`${compiled} is missing: run 'npm run build' first`);
  return compiled;
}

/**
 * Address space this Node maps at start without using it: RLIMIT_DATA counts reservations, and
 * Node 24's V8 reserves ~530 MB it never touches (VmData 575 MB at RSS 43 MB; Node 20: 49 MB at
 * 40 MB), which would leave a 512 MB cap no room to even start. The cap is raised by exactly this,
 * so limits.textMemoryMb keeps meaning the memory the parser may really use. Measured once per
 * process on the same binary; 0 where /proc is missing (the cap is then textMemoryMb as set).
 */
let reservedMb: number | undefined;
function runtimeReservationMb(): number {
  if (reservedMb !== undefined) return reservedMb;
  try {
    const probe = "const s = require('fs').readFileSync('/proc/self/status', 'utf8');"
      + "process.stdout.write(String(/VmData:\\s+(\\d+)/.exec(s)[1] - /VmRSS:\\s+(\\d+)/.exec(s)[1]))";
    // Synchronous, ~40 ms, once per process, before its first PDF.
    const out = execFileSync(process.execPath, ['--max-old-space-size=64', '-e', probe], { encoding: 'utf8', timeout: 10_000 });
    reservedMb = Math.max(0, Math.ceil(Number(out) / 1024));
  } catch {
    reservedMb = 0;
  }
  return reservedMb;
}

class PdfChild {
  readonly process: ChildProcess;
  served = 0;
  private stderrTail = '';

  constructor(readonly memoryMb: number) {
    // --max-old-space-size caps only V8's heap; pdf.js inflates streams into ArrayBuffers outside
    // it (a 400 KB PDF of Flate-compressed spaces reached 760 MB RSS under a 64 MB heap cap and
    // returned "ok"). RLIMIT_DATA caps every private writable mapping the process makes, so the
    // OS refuses what V8 does not count: the same PDF then fails "Array buffer allocation failed"
    // at 189 MB RSS under 256 MB. The heap cap stays below the OS cap by what Node and pdf.js
    // map besides the heap (~150 MB): a heap that runs into the OS cap first makes V8 retry
    // failing allocations for 85 s before it aborts (measured on a text-operator bomb at 128 of
    // 256 MB), while its own heap limit ends it in 2 s. fork() runs execPath with execArgv before
    // the script, so the shell sets the limit and execs Node, which keeps the IPC channel.
    this.process = fork(childScript(), [], {
      execPath: '/bin/sh',
      execArgv: ['-c', 'ulimit -d "$1" && shift && exec "$@"', 'sh', String((memoryMb + runtimeReservationMb()) * 1024), process.execPath, `--max-old-space-size=${memoryMb - OUTSIDE_HEAP_MB}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.process.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2000);
    });
  }

  get outOfMemory(): boolean {
    return /heap out of memory|Allocation failed/i.test(this.stderrTail);
  }

  run(request: PdfRequest, timeoutMs: number, memoryMb: number): Promise<PdfReply> {
    return new Promise((resolve, reject) => {
      const onMessage = (reply: PdfReply) => {
        if (reply.id !== request.id) return;
        cleanup();
        resolve(reply);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        cleanup();
        if (this.outOfMemory || code === 134 || signal === 'SIGABRT' || signal === 'SIGTRAP' || signal === 'SIGSEGV') {
          reject(new DocsiftError('TOO_LARGE', `parsing the PDF needed more than ${memoryMb} MB (limits.textMemoryMb)`));
        } else {
          reject(new DocsiftError('CORRUPT_DOCUMENT', `the PDF parser exited (code ${code}, signal ${signal}) on this document`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        this.process.kill('SIGKILL');
        reject(new DocsiftError('EXTRACTION_TIMEOUT', `text extraction took longer than ${timeoutMs} ms (limits.textTimeoutMs)`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.process.off('message', onMessage);
        this.process.off('exit', onExit);
      };
      this.process.on('message', onMessage);
      this.process.on('exit', onExit);
      this.process.send(request);
    });
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null && this.process.connected;
  }

  kill(): void {
    if (this.alive) this.process.kill('SIGKILL');
  }
}

/**
 * Text extraction behind one call. Plain text is decoded in-process (cheap); PDFs go to a pool
 * of child processes, one per concurrent job, each with a heap cap and a time limit.
 */
export class TextExtractor {
  private readonly idle: PdfChild[] = [];
  private readonly all = new Set<PdfChild>();
  private nextId = 1;
  private closed = false;

  async extract(bytes: Uint8Array, limits: TextLimits): Promise<ExtractedText> {
    if (bytes.length > limits.maxBytes) {
      throw new DocsiftError('TOO_LARGE', `the document has ${bytes.length} bytes; the queue allows ${limits.maxBytes} (limits.maxBytes)`);
    }
    const format = detectFormat(bytes);
    const warnings: string[] = [];
    let pages: string[];
    if (format === 'pdf') {
      pages = await this.extractPdf(bytes, limits);
    } else {
      pages = decodeText(bytes, warnings).split('\f');
      if (pages.length > limits.maxPages) {
        throw new DocsiftError('TOO_LARGE', `the text has ${pages.length} pages (form feeds); the queue allows ${limits.maxPages}`);
      }
    }
    const chars = pages.reduce((n, p) => n + p.length, 0);
    if (pages.every((p) => p.trim() === '')) {
      throw new DocsiftError('EMPTY_TEXT', format === 'pdf'
        ? `the PDF has ${pages.length} page(s) but no text layer (a scan needs OCR, which docsift does not do yet)`
        : 'the document holds only whitespace');
    }
    return { format, pages, chars, warnings };
  }

  private async extractPdf(bytes: Uint8Array, limits: TextLimits): Promise<string[]> {
    if (this.closed) throw new DocsiftError('INTERNAL', 'the text extractor is closed');
    // A child's heap cap is fixed when it starts, so only one started with this cap will do.
    const reuse = this.idle.findIndex((c) => c.memoryMb === limits.memoryMb);
    const child = reuse >= 0 ? this.idle.splice(reuse, 1)[0]! : this.spawn(limits.memoryMb);
    let reusable = false;
    try {
      const reply = await child.run({ id: this.nextId++, bytes, maxPages: limits.maxPages }, limits.timeoutMs, limits.memoryMb);
      // A parser that ran into its memory cap is not trusted with another document.
      reusable = reply.ok || reply.code !== 'TOO_LARGE';
      if (!reply.ok) throw new DocsiftError(reply.code, reply.message);
      return reply.pages;
    } finally {
      child.served++;
      if (reusable && child.alive && child.served < DOCUMENTS_PER_CHILD && !this.closed) {
        this.idle.push(child);
      } else {
        child.kill();
        this.all.delete(child);
      }
    }
  }

  private spawn(memoryMb: number): PdfChild {
    const child = new PdfChild(memoryMb);
    this.all.add(child);
    child.process.on('exit', () => {
      this.all.delete(child);
      const i = this.idle.indexOf(child);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return child;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const child of this.all) child.kill();
    this.all.clear();
    this.idle.length = 0;
  }
}

/**
 * UTF-8 when the bytes are valid UTF-8; otherwise Windows-1252, the usual encoding of text
 * exported by older back-office systems, with a warning on the result.
 */
export function decodeText(bytes: Uint8Array, warnings: string[]): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    warnings.push('INVALID_UTF8: the text is not valid UTF-8; it was read as Windows-1252');
    return decodeWindows1252(bytes);
  }
}

// Node's TextDecoder('windows-1252') decodes as ISO-8859-1, losing €, curly quotes and dashes
// (0x80-0x9F); this table restores them. Undefined positions stay as their C1 code points.
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008DŽ\u008F\u0090‘’“”•–—˜™š›œ\u009DžŸ';

function decodeWindows1252(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b >= 0x80 && b <= 0x9f ? CP1252_HIGH[b - 0x80] : String.fromCharCode(b);
  return out;
}
