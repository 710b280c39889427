import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RedisClient } from './connection.js';
import { DocsiftError } from '../infra/errors.js';
import { readFileUnderRoots } from '../infra/safeFile.js';
import type { Keys } from './keys.js';
import type { DocumentRef } from './payload.js';
import type { S3Bucket } from './s3.js';

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
        // On a Cluster the upload's key and the document's are in different slots (the hash is
        // known only at the end): copy in WRITE_CHUNK pieces instead of renaming.
        if (this.keys.cluster && staged.size > 0) await this.copy(temp, key, staged.size);
        const tx = this.redis.multi();
        // An empty upload never created its key: store the empty document explicitly.
        if (staged.size === 0) tx.set(key, Buffer.alloc(0));
        else if (!this.keys.cluster) tx.rename(temp, key);
        await tx.expire(key, this.ttlSeconds).sadd(holders, holder).expire(holders, this.ttlSeconds).exec();
        if (this.keys.cluster) await this.redis.del(temp);
        return { kind: 'redis', key };
      },
      discard: () => this.redis.del(temp).then(() => undefined),
    };
  }

  /** Copies `size` bytes from one key to another, a chunk at a time (bounded memory). */
  private async copy(from: string, to: string, size: number): Promise<void> {
    for (let offset = 0; offset < size; offset += WRITE_CHUNK) {
      const chunk = await this.redis.getrangeBuffer(from, offset, Math.min(size, offset + WRITE_CHUNK) - 1);
      if (chunk.length !== Math.min(WRITE_CHUNK, size - offset)) throw new DocsiftError('DOCUMENT_MISSING', `the upload's staged bytes expired before they were stored (${from})`);
      await (offset === 0 ? this.redis.set(to, chunk, 'EX', this.ttlSeconds) : this.redis.append(to, chunk));
    }
  }
}

/**
 * Bytes in an S3-compatible bucket (`<DOCSIFT_S3_PREFIX>doc/<sha256>`), their holders in Redis as
 * for the Redis store. S3 has no per-object TTL: a lifecycle rule on the prefix bounds what a
 * holder that never finished leaves (docs/SCALING.md).
 */
export class S3DocumentStore implements DocumentStore {
  constructor(private readonly redis: RedisClient, private readonly keys: Keys, private readonly s3: S3Bucket, private readonly ttlSeconds: number) {}

  async put(sha256: string, bytes: Buffer, holder: string): Promise<DocumentRef> {
    const key = this.s3.documentKey(sha256);
    await holdS3(this.redis, this.keys, sha256, holder, this.ttlSeconds);
    await this.s3.put(key, bytes);
    return { kind: 's3', key };
  }

  /** Uploads are spooled to a private temporary file while hashed (the object's name is the hash), then sent as one (multipart) upload. */
  async stage(source: AsyncIterable<Buffer>, maxBytes: number): Promise<StagedDocument> {
    const tmp = path.join(os.tmpdir(), `docsift-upload-${randomBytes(12).toString('hex')}`);
    const staged = await spoolToFile(tmp, source, maxBytes);
    return {
      ...staged,
      commit: async (holder) => {
        const key = this.s3.documentKey(staged.sha256);
        try {
          await holdS3(this.redis, this.keys, staged.sha256, holder, this.ttlSeconds);
          await this.s3.put(key, createReadStream(tmp));
        } finally {
          await fs.rm(tmp, { force: true });
        }
        return { kind: 's3', key };
      },
      discard: () => fs.rm(tmp, { force: true }),
    };
  }
}

/**
 * Adds a holder and reports whether a release is deleting the object right now; if so, waits for
 * it to finish (then this put writes the object again) instead of racing the delete.
 */
const HOLD = `redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('EXISTS', KEYS[2])`;

async function holdS3(redis: RedisClient, keys: Keys, sha256: string, holder: string, ttlSeconds: number): Promise<void> {
  for (let waited = 0; (await redis.eval(HOLD, 2, keys.documentHolders(sha256), keys.documentDeleting(sha256), holder, ttlSeconds)) === 1 && waited < DELETING_TTL_S * 1000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** How long a release may take to delete an object before a put stops waiting for it. */
const DELETING_TTL_S = 60;

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
    const staged = await spoolToFile(tmp, source, maxBytes);
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

/** streamInto a new private file (created, never followed or overwritten). */
async function spoolToFile(tmp: string, source: AsyncIterable<Buffer>, maxBytes: number): Promise<Omit<StagedDocument, 'commit' | 'discard'>> {
  const file = await fs.open(tmp, 'wx', 0o600);
  try {
    return await streamInto(source, maxBytes, async (chunk) => { await file.write(chunk); }, () => fs.rm(tmp, { force: true }));
  } finally {
    await file.close();
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

type StoreEnv = { DOCSIFT_STORE: 'redis' | 'fs' | 's3'; DOCSIFT_STORE_DIR: string; DOCSIFT_STORE_TTL_S: number; DOCSIFT_S3_PREFIX: string };

/** The store this installation's configuration names (DOCSIFT_STORE); s3 is the bucket the process opened (S3Bucket.fromEnv). */
export function createDocumentStore(env: StoreEnv, redis: RedisClient, keys: Keys, s3: S3Bucket | undefined): DocumentStore {
  switch (env.DOCSIFT_STORE) {
    case 'fs': return new FileDocumentStore(env.DOCSIFT_STORE_DIR);
    case 's3': return new S3DocumentStore(redis, keys, s3!, env.DOCSIFT_STORE_TTL_S);
    default: return new RedisDocumentStore(redis, keys, env.DOCSIFT_STORE_TTL_S);
  }
}

/** Where the configured store keeps the bytes of this hash (they may be gone). */
export function storedRef(env: StoreEnv, keys: Keys, sha256: string): DocumentRef {
  switch (env.DOCSIFT_STORE) {
    case 'fs': return { kind: 'file', path: FileDocumentStore.pathOf(env.DOCSIFT_STORE_DIR, sha256) };
    case 's3': return { kind: 's3', key: `${env.DOCSIFT_S3_PREFIX}doc/${sha256}` };
    default: return { kind: 'redis', key: keys.document(sha256) };
  }
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

/** The S3 store's release: the last holder marks the object as being deleted (HOLD waits for that), deletes it, and clears the mark. */
const RELEASE_S3 = `redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  return 1
end
return 0`;

export async function releaseDocument(redis: RedisClient, keys: Keys, ref: DocumentRef, holder: string, s3?: S3Bucket): Promise<boolean> {
  if (ref.kind === 's3') {
    const sha256 = s3?.documentSha(ref.key);
    if (!s3 || !sha256) return false;
    if ((await redis.eval(RELEASE_S3, 2, keys.documentHolders(sha256), keys.documentDeleting(sha256), holder, DELETING_TTL_S)) !== 1) return false;
    try {
      await s3.delete(ref.key);
    } finally {
      await redis.del(keys.documentDeleting(sha256));
    }
    return true;
  }
  const sha256 = ref.kind === 'redis' ? keys.documentSha(ref.key) : null;
  if (ref.kind !== 'redis' || !sha256) return false;
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
  /** The bucket of DOCSIFT_STORE=s3, when this installation has one. */
  s3?: S3Bucket | undefined;
}

/**
 * Reads what a reference points at, for the worker. The reference comes from a job, and anyone
 * who can write to Redis can write a job, so it is checked before anything is read: a key must be
 * one of this installation's document keys, a path must lead to a regular file under a root
 * (readFileUnderRoots), and neither may yield more than maxBytes.
 */
export async function loadDocument(redis: RedisClient, ref: DocumentRef, limits: LoadLimits): Promise<Buffer> {
  if (ref.kind === 'file') return (await readFileUnderRoots(ref.path, limits.roots, limits.maxBytes)).bytes;
  if (ref.kind === 's3') {
    if (!limits.s3?.documentSha(ref.key)) {
      throw new DocsiftError('KEY_NOT_ALLOWED', `ref.key ${JSON.stringify(ref.key.slice(0, 200))} is not a document object of this installation (${limits.s3 ? limits.s3.documentKey('<sha256>') : 'it keeps no documents in S3: DOCSIFT_S3_BUCKET is not set'})`);
    }
    const bytes = await limits.s3.get(ref.key, limits.maxBytes);
    if (bytes.length > limits.maxBytes) throw new DocsiftError('TOO_LARGE', `the stored document has more than ${limits.maxBytes} bytes (limits.maxBytes)`);
    return bytes;
  }
  if (!limits.keys.documentSha(ref.key)) {
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
