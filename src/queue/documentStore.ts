import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { DocsiftError } from '../infra/errors.js';
import type { Keys } from './keys.js';
import type { DocumentRef } from './payload.js';

/**
 * Where enqueued bytes wait for a worker. The job only carries the reference. Redis is the
 * default (nothing to share between nodes but Redis); a shared filesystem suits big files.
 */
export interface DocumentStore {
  put(sha256: string, bytes: Buffer): Promise<DocumentRef>;
}

export class RedisDocumentStore implements DocumentStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys, private readonly ttlSeconds: number) {}

  async put(sha256: string, bytes: Buffer): Promise<DocumentRef> {
    const key = this.keys.document(sha256);
    await this.redis.set(key, bytes, 'EX', this.ttlSeconds);
    return { kind: 'redis', key };
  }
}

export class FileDocumentStore implements DocumentStore {
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  async put(sha256: string, bytes: Buffer): Promise<DocumentRef> {
    const target = path.join(this.dir, sha256.slice(0, 2), sha256);
    await fs.mkdir(path.dirname(target), { recursive: true });
    // Write then rename: a worker on another node never sees half a file.
    const tmp = `${target}.${process.pid}.tmp`;
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, target);
    return { kind: 'file', path: target };
  }
}

/** Reads what a reference points at, for the worker. */
export async function loadDocument(redis: Redis, ref: DocumentRef): Promise<Buffer> {
  if (ref.kind === 'redis') {
    const bytes = await redis.getBuffer(ref.key);
    if (bytes === null) throw new DocsiftError('DOCUMENT_MISSING', `no stored bytes under Redis key ${ref.key} (expired? DOCSIFT_STORE_TTL_S)`);
    return bytes;
  }
  try {
    return await fs.readFile(ref.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DocsiftError('DOCUMENT_MISSING', `the file ${ref.path} does not exist`);
    if (code === 'EISDIR') throw new DocsiftError('INVALID_JOB', `${ref.path} is a directory`);
    throw err;
  }
}
