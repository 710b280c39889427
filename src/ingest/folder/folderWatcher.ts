import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { RedisClient } from '../../queue/connection.js';
import type { Config } from '../../config/index.js';
import { DocsiftError, toDocsiftError } from '../../infra/errors.js';
import { readFileUnderRoots } from '../../infra/safeFile.js';
import type { Logger } from '../../infra/logger.js';
import type { DocumentQueue, Keys } from '../../queue/index.js';
import { documentIdFor } from '../../queue/index.js';
import { documentStatus, latestJob, type DocumentStatus } from '../documentStatus.js';
import type { Enqueuer } from '../enqueue.js';

export interface FolderWatcherOptions {
  /** The watched folder; inbox/, processing/, done/ and failed/ live inside it. */
  dir: string;
  /** Queue for files directly in inbox/. */
  queue: string;
  /** A file is taken once its size and mtime have not changed for this long. */
  stableMs: number;
  /** How often inbox/ and processing/ are scanned. */
  intervalMs: number;
  /** Also react to file-system events (local disks); off for network shares, which do not deliver them. */
  useEvents: boolean;
  /** A file whose bytes already have a result: skip (reuse that result) or reprocess. */
  duplicates: 'skip' | 'reprocess';
}

export interface WatchQueue {
  queue: DocumentQueue;
  enqueuer: Enqueuer;
}

/** Temporary and hidden files that are never taken: partial downloads, editor and Office lock files. */
export function isIgnored(name: string): boolean {
  return name.startsWith('.') || name.startsWith('~$') || /\.(part|tmp|crdownload|download|swp|partial)$/i.test(name) || name.endsWith('~');
}

/** `name`, or `name (1).ext`, `name (2).ext`… whichever does not exist yet in dir. */
export function freeName(dir: string, name: string, taken: (p: string) => boolean = fs.existsSync): string {
  const ext = path.extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? name : `${stem} (${i})${ext}`;
    if (!taken(path.join(dir, candidate)) && !taken(path.join(dir, `${candidate}.result.json`)) && !taken(path.join(dir, `${candidate}.error.json`))) return candidate;
  }
}

const SEP = '--';

/** A file that leaves processing/ for failed/ without a document: refused before or at enqueue. */
const refused = (code: string, message: string): DocumentStatus => ({ state: 'failed', documentId: '', code, message, attempts: 0 });

/**
 * The whole lifecycle of a watched folder. State lives in the folder itself, so any number of
 * watchers (on several nodes sharing the folder) cooperate and a restarted one picks up where a
 * dead one stopped:
 *
 * - inbox/[sub/]name: taken when stable, by an atomic rename into processing/ (only one watcher's
 *   rename succeeds). A subfolder named after a queue goes to that queue; one named after a
 *   document type is extracted as that type without classification.
 * - processing/sub/<claim>--name: its document id follows from its bytes and route, so every scan
 *   asks Redis where it stands: unknown -> enqueue (idempotent: the job id is the document id),
 *   queued or running -> wait, done -> done/, failed -> failed/.
 * - done/[sub/]name + name.result.json; failed/[sub/]name + name.error.json. Names never clash.
 */
export class FolderWatcher {
  private readonly inbox: string;
  private readonly processing: string;
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  private readonly ids = new Map<string, { key: string; documentId: string }>();
  private timer: NodeJS.Timeout | undefined;
  private watcher: fs.FSWatcher | undefined;
  private running: Promise<void> | undefined;
  private rescan = false;
  private stopped = false;

  constructor(
    private readonly config: Config,
    private readonly queues: ReadonlyMap<string, WatchQueue>,
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly options: FolderWatcherOptions,
    private readonly logger: Logger,
  ) {
    this.inbox = path.join(options.dir, 'inbox');
    this.processing = path.join(options.dir, 'processing');
  }

  async start(): Promise<void> {
    for (const sub of ['inbox', 'processing', 'done', 'failed']) await fsp.mkdir(path.join(this.options.dir, sub), { recursive: true });
    if (!this.queues.has(this.options.queue)) throw new Error(`no queue "${this.options.queue}" for ${this.inbox}`);
    if (this.options.useEvents) {
      try {
        this.watcher = fs.watch(this.inbox, { recursive: true }, () => { this.rescan = true; });
        this.watcher.on('error', (err) => this.logger.warn({ err }, 'file events stopped; polling only'));
      } catch (err) {
        this.logger.warn({ err }, 'file events unavailable; polling only');
      }
    }
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.scan().then(() => undefined, (err: unknown) => this.logger.error({ err }, 'scan failed'));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(loop, this.rescan ? Math.min(200, this.options.intervalMs) : this.options.intervalMs);
      this.rescan = false;
    };
    await loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.watcher?.close();
    await this.running;
  }

  /** One pass: take stable inbox files, then move every processing file as far as it can go. */
  async scan(): Promise<{ claimed: number; finished: number }> {
    const claimed = await this.claimStable();
    const finished = await this.advanceProcessing();
    return { claimed, finished };
  }

  /** Where a file under inbox/<sub>/ goes: its queue, and a fixed document type if the folder names one. */
  private route(sub: string): { queue: string; documentType?: string } | { error: string } {
    if (sub === '') return { queue: this.options.queue };
    if (this.queues.has(sub)) return { queue: sub };
    if (this.config.prompts.types.has(sub)) return { queue: this.options.queue, documentType: sub };
    return { error: `inbox/${sub}/ names neither a queue (${[...this.queues.keys()].join(', ')}) nor a document type (${[...this.config.prompts.types.keys()].join(', ')})` };
  }

  /**
   * Every entry to take or refuse: regular files, and anything else (a link, a FIFO, a socket,
   * a link to a folder) as `other`, which is failed PATH_NOT_ALLOWED instead of being left in
   * inbox/ forever or followed. Folders one level down are routes (inbox/<queue or type>/).
   */
  private async listFiles(root: string): Promise<Array<{ sub: string; name: string; other: boolean }>> {
    const out: Array<{ sub: string; name: string; other: boolean }> = [];
    const entries = await fsp.readdir(root, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (isIgnored(e.name)) continue;
      if (e.isDirectory()) {
        for (const f of await fsp.readdir(path.join(root, e.name), { withFileTypes: true }).catch(() => [])) {
          if (!isIgnored(f.name) && !f.isDirectory()) out.push({ sub: e.name, name: f.name, other: !f.isFile() });
        }
      } else {
        out.push({ sub: '', name: e.name, other: !e.isFile() });
      }
    }
    return out;
  }

  private async claimStable(): Promise<number> {
    const now = Date.now();
    const present = new Set<string>();
    let claimed = 0;
    for (const { sub, name, other } of await this.listFiles(this.inbox)) {
      const file = path.join(this.inbox, sub, name);
      present.add(file);
      // lstat: a link is judged as the link, never by what it points at.
      const stat = await fsp.lstat(file).catch(() => null);
      if (!stat) continue;
      // Anything but a regular file is not waited for: it is refused as it is, with the reason.
      if (!other) {
        const prev = this.seen.get(file);
        if (!prev || prev.size !== stat.size || prev.mtimeMs !== stat.mtimeMs) {
          this.seen.set(file, { size: stat.size, mtimeMs: stat.mtimeMs, since: now });
          continue;
        }
        if (now - prev.since < this.options.stableMs) continue;
      }
      // The claim: a rename is atomic, so of several watchers exactly one gets the file.
      const target = path.join(this.processing, sub, `${Date.now().toString(36)}${randomBytes(3).toString('hex')}${SEP}${name}`);
      await fsp.mkdir(path.dirname(target), { recursive: true });
      try {
        await fsp.rename(file, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another watcher took it
        throw err;
      }
      this.seen.delete(file);
      claimed++;
      if (other) await this.refuse(target, sub, name);
      else await this.enqueueClaimed(target, sub, name, this.options.duplicates === 'reprocess');
    }
    for (const file of this.seen.keys()) if (!present.has(file)) this.seen.delete(file);
    return claimed;
  }

  private async enqueueClaimed(file: string, sub: string, name: string, force: boolean): Promise<void> {
    const route = this.route(sub);
    if ('error' in route) return void (await this.finish(file, sub, name, refused('UNKNOWN_FOLDER', route.error)));
    const q = this.queues.get(route.queue)!;
    try {
      const bytes = await this.read(file, q);
      const outcome = await q.enqueuer.enqueue({ bytes, filename: name, source: `watch:${this.options.dir}`, metadata: { watchedFile: path.join(sub, name) }, force, documentType: route.documentType });
      this.ids.set(file, { key: await this.statKey(file), documentId: outcome.documentId });
      this.logger.info({ file: path.join(sub, name), documentId: outcome.documentId, status: outcome.status }, 'taken from inbox');
    } catch (err) {
      const e = toDocsiftError(err);
      // A problem of the file itself (too large, bad type) is final; anything else is retried next scan.
      if (!e.retryable) await this.finish(file, sub, name, refused(e.code, e.message));
      else this.logger.warn({ err: e, file }, 'enqueue failed; retrying on the next scan');
    }
  }

  /** A claimed file's bytes: opened once, not through a link, from inside the watched folder only. */
  private async read(file: string, q: WatchQueue): Promise<Buffer> {
    return (await readFileUnderRoots(file, [this.options.dir], q.enqueuer.queueConfig.limits.maxBytes)).bytes;
  }

  private async refuse(file: string, sub: string, name: string): Promise<void> {
    await this.finish(file, sub, name, refused('PATH_NOT_ALLOWED', `${path.join(sub, name)} is not a regular file (a symbolic link, FIFO or socket); watched folders take regular files only`));
  }

  private async statKey(file: string): Promise<string> {
    const stat = await fsp.lstat(file);
    return `${stat.size}:${stat.mtimeMs}:${stat.ino}`;
  }

  /** The document id of a processing file: from its bytes and route (hashed once, cached by stat). */
  private async documentIdOf(file: string, sub: string): Promise<{ documentId: string; queue: WatchQueue; documentType?: string } | null> {
    const route = this.route(sub);
    if ('error' in route) return null;
    const queue = this.queues.get(route.queue)!;
    const key = await this.statKey(file);
    let cached = this.ids.get(file);
    if (!cached || cached.key !== key) {
      const sha256 = createHash('sha256').update(await this.read(file, queue)).digest('hex');
      cached = { key, documentId: documentIdFor(sha256, queue.enqueuer.pipelineVersion, route.documentType) };
      this.ids.set(file, cached);
    }
    return { documentId: cached.documentId, queue, ...(route.documentType ? { documentType: route.documentType } : {}) };
  }

  private async advanceProcessing(): Promise<number> {
    let finished = 0;
    for (const { sub, name: claimedName, other } of await this.listFiles(this.processing)) {
      if (this.stopped) break;
      const file = path.join(this.processing, sub, claimedName);
      const name = claimedName.includes(SEP) ? claimedName.slice(claimedName.indexOf(SEP) + SEP.length) : claimedName;
      if (other) {
        await this.refuse(file, sub, name);
        continue;
      }
      let target: Awaited<ReturnType<FolderWatcher['documentIdOf']>>;
      try {
        target = await this.documentIdOf(file, sub);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err instanceof DocsiftError && err.code === 'DOCUMENT_MISSING')) continue; // finished by another watcher
        // The file itself is refused (a link swapped in, grown too large): it leaves processing/ with the reason.
        if (err instanceof DocsiftError && !err.retryable) {
          await this.finish(file, sub, name, refused(err.code, err.message));
          continue;
        }
        throw err;
      }
      if (!target) {
        await this.enqueueClaimed(file, sub, name, false);
        continue;
      }
      const latest = await latestJob(this.redis, this.keys, target.documentId);
      const status = await documentStatus(target.queue.queue, this.redis, this.keys, target.documentId, latest?.jobId ?? target.documentId);
      if (status.state === 'unknown') {
        // Left here by a watcher that died between claim and enqueue, or its job was removed: enqueue (again).
        await this.enqueueClaimed(file, sub, name, false);
      } else if (status.state === 'done' || status.state === 'failed') {
        if (await this.finish(file, sub, name, status)) finished++;
      }
    }
    return finished;
  }

  /** Moves a finished file out of processing/ with its result or error beside it; false if another watcher did. */
  private async finish(file: string, sub: string, name: string, status: DocumentStatus): Promise<boolean> {
    const failed = status.state === 'failed';
    const dir = path.join(this.options.dir, failed ? 'failed' : 'done', sub);
    await fsp.mkdir(dir, { recursive: true });
    const finalName = freeName(dir, name);
    try {
      await fsp.rename(file, path.join(dir, finalName));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    this.ids.delete(file);
    const sidecar = failed
      ? { documentId: status.documentId || null, code: status.code, message: status.message, attempts: status.attempts, file: path.join(sub, name), failedAt: new Date().toISOString() }
      : status.state === 'done' ? status.record : null;
    const sidecarFile = path.join(dir, `${finalName}.${failed ? 'error' : 'result'}.json`);
    await fsp.writeFile(`${sidecarFile}.tmp`, JSON.stringify(sidecar, null, 2) + '\n');
    await fsp.rename(`${sidecarFile}.tmp`, sidecarFile);
    this.logger.info({ file: path.join(sub, name), state: status.state, to: path.join(failed ? 'failed' : 'done', sub, finalName) }, 'finished');
    return true;
  }
}
