import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { RedisClient } from './connection.js';
import { DocsiftError } from '../infra/errors.js';
import { readFileUnderRoots } from '../infra/safeFile.js';
import type { Keys } from './keys.js';
import type { DocumentRef } from './payload.js';

/**
 * Bytes streamed into a store and hashed on the way, not yet a document: commit() moves them to
 * their content-addressed place for a job (`holder`), discard() drops them. The API streams
 * uploads through this, so a request never holds a whole file in memory.
 */
export interface StagedDocument {
  sha256: string;
  size: number;
  /** The first HEAD_BYTES, for format detection. */
  head: Buffer;
  commit(holder: string): Promise<DocumentRef>;
  discard(): Promise<void>;
}

/** What format detection reads of a document's start. */
const HEAD_BYTES = 64 * 1024;
/** Upload bytes gathered before one write to the store: few round trips, little memory. */
const WRITE_CHUNK = 1024 * 1024;
/** An abandoned upload (the API died mid-request) is gone after this. */
const STAGING_TTL_S = 3600;

/**
 * Where enqueued bytes wait for a worker. The job only carries the reference. Redis is the
 * default (nothing to share between nodes but Redis); a shared filesystem suits big files.
 * `holder` (`<queue>:<jobId>`) names the job that needs the bytes, so that they are deleted when
 * the last job that needs them is final and not before (releaseDocument).
 */
export interface DocumentStore {
  put(sha256: string, bytes: Buffer, holder: string): Promise<DocumentRef>;
  /** Streams bytes in, hashing them; more than maxBytes fails TOO_LARGE and leaves nothing. */
  stage(source: AsyncIterable<Buffer>, maxBytes: number): Promise<StagedDocument>;
}

export class RedisDocumentStore implements DocumentStore {
  constructor(private readonly redis: RedisClient, private readonly keys: Keys, private readonly ttlSeconds: number) {}

  async put(sha256: string, bytes: Buffer, holder: string): Promise<DocumentRef> {
    const key = this.keys.document(sha256);
    const holders = this.keys.documentHolders(sha256);
    // One transaction: a worker releasing the same bytes in between must see this holder.
    await this.redis.multi().set(key, bytes, 'EX', this.ttlSeconds).sadd(holders, holder).expire(holders, this.ttlSeconds).exec();
    return { kind: 'redis', key };
  }

  async stage(source: AsyncIterable<Buffer>, maxBytes: number): Promise<StagedDocument> {
    const temp = this.keys.upload(randomBytes(12).toString('hex'));
    const staged = await streamInto(source, maxBytes, async (chunk, first) => {
      await (first ? this.redis.set(temp, chunk, 'EX', STAGING_TTL_S) : this.redis.append(temp, chunk));
    }, () => this.redis.del(temp).then(() => undefined));
    return {
      ...staged,
      commit: async (holder) => {
        const key = this.keys.document(staged.sha256);
        const holders = this.keys.documentHolders(staged.sha256);
        const tx = this.redis.multi();
        // An empty upload never created its key: store the empty document explicitly.
        if (staged.size === 0) tx.set(key, Buffer.alloc(0));
        else tx.rename(temp, key);
        await tx.expire(key, this.ttlSeconds).sadd(holders, holder).expire(holders, this.ttlSeconds).exec();
        return { kind: 'redis', key };
      },
      discard: () => this.redis.del(temp).then(() => undefined),
    };
  }
}

export class FileDocumentStore implements DocumentStore {
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** The store's layout: <dir>/<first two hex>/<sha256>. */
  static pathOf(dir: string, sha256: string): string {
    return path.join(path.resolve(dir), sha256.slice(0, 2), sha256);
  }

  private target(sha256: string): string {
    return FileDocumentStore.pathOf(this.dir, sha256);
  }

  async put(sha256: string, bytes: Buffer): Promise<DocumentRef> {
    const target = this.target(sha256);
    await fs.mkdir(path.dirname(target), { recursive: true });
    // Write then rename: a worker on another node never sees half a file.
    const tmp = `${target}.${process.pid}.tmp`;
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, target);
    return { kind: 'file', path: target };
  }

  async stage(source: AsyncIterable<Buffer>, maxBytes: number): Promise<StagedDocument> {
    await fs.mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.upload-${randomBytes(12).toString('hex')}.tmp`);
    const file = await fs.open(tmp, 'wx', 0o600);
    let staged: Omit<StagedDocument, 'commit' | 'discard'>;
    try {
      staged = await streamInto(source, maxBytes, async (chunk) => { await file.write(chunk); }, () => fs.rm(tmp, { force: true }));
    } finally {
      await file.close();
    }
    return {
      ...staged,
      commit: async () => {
        const target = this.target(staged.sha256);
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs.rename(tmp, target);
        return { kind: 'file', path: target };
      },
      discard: () => fs.rm(tmp, { force: true }),
    };
  }
}

/**
 * Reads a stream to its end, hashing it and handing it to `write` in WRITE_CHUNK pieces (awaited,
 * so a slow store slows the upload instead of filling memory). Past maxBytes, or when the source
 * fails, `abort` removes what was written and the error is thrown.
 */
async function streamInto(
  source: AsyncIterable<Buffer>, maxBytes: number,
  write: (chunk: Buffer, first: boolean) => Promise<void>, abort: () => Promise<void>,
): Promise<Omit<StagedDocument, 'commit' | 'discard'>> {
  const hash = createHash('sha256');
  const heads: Buffer[] = [];
  let headSize = 0;
  let pending: Buffer[] = [];
  let pendingSize = 0;
  let size = 0;
  let first = true;
  const flush = async () => {
    if (pendingSize === 0) return;
    const chunk = Buffer.concat(pending, pendingSize);
    pending = [];
    pendingSize = 0;
    await write(chunk, first);
    first = false;
  };
  try {
    for await (const chunk of source) {
      size += chunk.length;
      if (size > maxBytes) throw new DocsiftError('TOO_LARGE', `the upload has more than ${maxBytes} bytes`);
      hash.update(chunk);
      if (headSize < HEAD_BYTES) {
        heads.push(Buffer.from(chunk.subarray(0, HEAD_BYTES - headSize)));
        headSize += Math.min(chunk.length, HEAD_BYTES - headSize);
      }
      pending.push(chunk);
      pendingSize += chunk.length;
      if (pendingSize >= WRITE_CHUNK) await flush();
    }
    await flush();
  } catch (err) {
    await abort().catch(() => undefined);
    throw err;
  }
  return { sha256: hash.digest('hex'), size, head: Buffer.concat(heads) };
}

type StoreEnv = { DOCSIFT_STORE: 'redis' | 'fs'; DOCSIFT_STORE_DIR: string; DOCSIFT_STORE_TTL_S: number };

/** The store this installation's configuration names (DOCSIFT_STORE). */
export function createDocumentStore(env: StoreEnv, redis: RedisClient, keys: Keys): DocumentStore {
  return env.DOCSIFT_STORE === 'fs' ? new FileDocumentStore(env.DOCSIFT_STORE_DIR) : new RedisDocumentStore(redis, keys, env.DOCSIFT_STORE_TTL_S);
}

/** Where the configured store keeps the bytes of this hash (they may be gone). */
export function storedRef(env: StoreEnv, keys: Keys, sha256: string): DocumentRef {
  return env.DOCSIFT_STORE === 'fs' ? { kind: 'file', path: FileDocumentStore.pathOf(env.DOCSIFT_STORE_DIR, sha256) } : { kind: 'redis', key: keys.document(sha256) };
}

/**
 * Drops a job's hold on its stored bytes and deletes them when nobody else holds them, in one
 * script, so an enqueue of the same bytes that lands meanwhile keeps them. Only document keys of
 * this installation are deleted; files are left to the operator (the fs store has no TTL either).
 */
const RELEASE = `redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

export async function releaseDocument(redis: RedisClient, keys: Keys, ref: DocumentRef, holder: string): Promise<boolean> {
  if (ref.kind !== 'redis' || !keys.isDocumentKey(ref.key)) return false;
  const sha256 = ref.key.slice(-64);
  return (await redis.eval(RELEASE, 2, ref.key, keys.documentHolders(sha256), holder)) === 1;
}

/** Where a job's ref.path may point: the shared store folder and the roots the operator lists. */
export function documentRoots(env: { DOCSIFT_STORE_DIR: string; DOCSIFT_DOCUMENT_ROOTS: readonly string[] }): string[] {
  return [env.DOCSIFT_STORE_DIR, ...env.DOCSIFT_DOCUMENT_ROOTS].map((r) => path.resolve(r));
}

export interface LoadLimits {
  keys: Keys;
  /** Folders a file reference must lie in (documentRoots). */
  roots: readonly string[];
  maxBytes: number;
}

/**
 * Reads what a reference points at, for the worker. The reference comes from a job, and anyone
 * who can write to Redis can write a job, so it is checked before anything is read: a key must be
 * one of this installation's document keys, a path must lead to a regular file under a root
 * (readFileUnderRoots), and neither may yield more than maxBytes.
 */
export async function loadDocument(redis: RedisClient, ref: DocumentRef, limits: LoadLimits): Promise<Buffer> {
  if (ref.kind === 'file') return (await readFileUnderRoots(ref.path, limits.roots, limits.maxBytes)).bytes;
  if (!limits.keys.isDocumentKey(ref.key)) {
    throw new DocsiftError('KEY_NOT_ALLOWED', `ref.key ${JSON.stringify(ref.key.slice(0, 200))} is not a document key of this installation (${limits.keys.document('<sha256>')})`);
  }
  // GETRANGE reads at most maxBytes + 1 bytes, whatever was stored under the key.
  const bytes = await redis.getrangeBuffer(ref.key, 0, limits.maxBytes);
  if (bytes.length > limits.maxBytes) throw new DocsiftError('TOO_LARGE', `the stored document has more than ${limits.maxBytes} bytes (limits.maxBytes)`);
  // A missing key reads as empty, like an empty document: tell the two apart only then.
  if (bytes.length === 0 && !(await redis.exists(ref.key))) {
    throw new DocsiftError('DOCUMENT_MISSING', `no stored bytes under Redis key ${ref.key} (expired? DOCSIFT_STORE_TTL_S)`);
  }
  return bytes;
}
