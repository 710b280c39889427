import type * as ClientS3 from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { readSecret } from '../config/mailboxes.js';
import { ConfigError, DocsiftError } from '../infra/errors.js';

/**
 * Multipart parts: S3's minimum (5 MiB) is what a part may be at least; 8 MiB keeps a 50 MB
 * document to 7 parts and the upload's memory to queueSize parts.
 */
const PART_BYTES = 8 * 1024 * 1024;

/** Time to open a connection, and longest silence on one, before a request fails. */
const CONNECT_TIMEOUT_MS = 5_000;
const IDLE_TIMEOUT_MS = 30_000;

/**
 * The AWS SDK is loaded when a bucket is opened, not with this module: every process imports the
 * queue folder (docsift enqueue, the API, workers) and most use no bucket; the SDK's imports took
 * ~215 ms of each start. Its CommonJS build, so that opening a bucket stays synchronous.
 */
const load = createRequire(import.meta.url);
let sdk: { s3: typeof ClientS3; storage: typeof LibStorage } | undefined;
function awsSdk(): { s3: typeof ClientS3; storage: typeof LibStorage } {
  return (sdk ??= { s3: load('@aws-sdk/client-s3') as typeof ClientS3, storage: load('@aws-sdk/lib-storage') as typeof LibStorage });
}

export interface S3Env {
  DOCSIFT_S3_BUCKET?: string | undefined;
  DOCSIFT_S3_ENDPOINT?: string | undefined;
  DOCSIFT_S3_REGION: string;
  DOCSIFT_S3_PREFIX: string;
  DOCSIFT_S3_PATH_STYLE?: boolean | undefined;
  DOCSIFT_S3_ACCESS_KEY_ID?: string | undefined;
  DOCSIFT_S3_SECRET_ACCESS_KEY?: string | undefined;
  DOCSIFT_S3_SECRET_ACCESS_KEY_FILE?: string | undefined;
}

/**
 * One bucket of S3-compatible storage (AWS S3, MinIO, Ceph RGW) under a key prefix: the document
 * store's objects are `<prefix>doc/<sha256>`. Credentials are explicit (never the SDK's default
 * chain, which would probe a cloud metadata address from an on-prem box).
 */
export class S3Bucket {
  private readonly sdk = awsSdk().s3;

  private constructor(readonly client: ClientS3.S3Client, readonly bucket: string, readonly prefix: string, readonly endpoint: string) {}

  /** The bucket the environment names, or undefined when DOCSIFT_S3_BUCKET is not set. */
  static fromEnv(env: S3Env): S3Bucket | undefined {
    if (!env.DOCSIFT_S3_BUCKET) return undefined;
    const secretAccessKey = env.DOCSIFT_S3_SECRET_ACCESS_KEY
      ?? (env.DOCSIFT_S3_SECRET_ACCESS_KEY_FILE ? readSecret({ file: env.DOCSIFT_S3_SECRET_ACCESS_KEY_FILE }, { file: 'environment', key: 'DOCSIFT_S3_SECRET_ACCESS_KEY_FILE' }) : undefined);
    if (!env.DOCSIFT_S3_ACCESS_KEY_ID || !secretAccessKey) {
      throw new ConfigError('environment', 'DOCSIFT_S3_ACCESS_KEY_ID', 'DOCSIFT_S3_BUCKET needs credentials: DOCSIFT_S3_ACCESS_KEY_ID and DOCSIFT_S3_SECRET_ACCESS_KEY (or DOCSIFT_S3_SECRET_ACCESS_KEY_FILE)');
    }
    const client = new (awsSdk().s3.S3Client)({
      region: env.DOCSIFT_S3_REGION,
      ...(env.DOCSIFT_S3_ENDPOINT ? { endpoint: env.DOCSIFT_S3_ENDPOINT } : {}),
      // MinIO and most on-prem servers want bucket names in the path, not in the host name.
      forcePathStyle: env.DOCSIFT_S3_PATH_STYLE ?? Boolean(env.DOCSIFT_S3_ENDPOINT),
      credentials: { accessKeyId: env.DOCSIFT_S3_ACCESS_KEY_ID, secretAccessKey },
      maxAttempts: 3,
      // Every request is bounded in time: a server that accepts and never answers fails
      // STORE_UNAVAILABLE (retried by the queue) instead of holding a job for ever.
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: IDLE_TIMEOUT_MS, throwOnRequestTimeout: true },
    });
    return new S3Bucket(client, env.DOCSIFT_S3_BUCKET, env.DOCSIFT_S3_PREFIX, env.DOCSIFT_S3_ENDPOINT ?? `s3.${env.DOCSIFT_S3_REGION}.amazonaws.com`);
  }

  /** Where a document's bytes are. */
  documentKey(sha256: string): string {
    return `${this.prefix}doc/${sha256}`;
  }

  /** The hash of an object key a job names when it is one of this store's documents, else null. */
  documentSha(key: string): string | null {
    if (!key.startsWith(`${this.prefix}doc/`)) return null;
    const sha = key.slice(this.prefix.length + 4);
    return /^[0-9a-f]{64}$/.test(sha) ? sha : null;
  }

  /** Writes an object; bodies past one part go up as a multipart upload, streamed. */
  async put(key: string, body: Buffer | Readable, contentType = 'application/octet-stream'): Promise<void> {
    try {
      await new (awsSdk().storage.Upload)({ client: this.client, params: { Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }, partSize: PART_BYTES, queueSize: 2 }).done();
    } catch (err) {
      throw unavailable(`cannot write s3://${this.bucket}/${key}`, err);
    }
  }

  /**
   * At most maxBytes + 1 bytes of an object, so a caller can tell "too large": HEAD first (a
   * missing object and an empty one need no body, and servers differ on a range of nothing), then
   * a ranged GET whose body is read no further than the bound.
   */
  async get(key: string, maxBytes: number): Promise<Buffer> {
    try {
      const head = await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!head.ContentLength) return Buffer.alloc(0);
      const res = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${maxBytes}` }));
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.Body as AsyncIterable<Uint8Array>) {
        chunks.push(Buffer.from(chunk));
        size += chunk.length;
        if (size > maxBytes) break;
      }
      return Buffer.concat(chunks, size);
    } catch (err) {
      if (err instanceof this.sdk.NoSuchKey || (err instanceof this.sdk.S3ServiceException && err.$metadata.httpStatusCode === 404)) {
        throw new DocsiftError('DOCUMENT_MISSING', `no object s3://${this.bucket}/${key} (deleted, or expired by the bucket's lifecycle rule)`);
      }
      throw unavailable(`cannot read s3://${this.bucket}/${key}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw unavailable(`cannot delete s3://${this.bucket}/${key}`, err);
    }
  }

  /** Whether the bucket answers to these credentials (doctor). */
  async check(): Promise<void> {
    try {
      await this.client.send(new this.sdk.HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw unavailable(`bucket ${this.bucket} at ${this.endpoint}`, err);
    }
  }

  /**
   * Days after which the bucket's lifecycle rules expire objects under a prefix, or why that is
   * not known (no rule, or a server that does not report rules).
   */
  async expiryDays(prefix: string): Promise<number | string> {
    try {
      const res = await this.client.send(new this.sdk.GetBucketLifecycleConfigurationCommand({ Bucket: this.bucket }));
      const rule = (res.Rules ?? []).find((r) => r.Status === 'Enabled' && r.Expiration?.Days && prefix.startsWith(r.Filter?.Prefix ?? r.Prefix ?? ''));
      return rule?.Expiration?.Days ?? `no enabled lifecycle rule expires ${prefix}`;
    } catch (err) {
      return err instanceof this.sdk.S3ServiceException && err.name === 'NoSuchLifecycleConfiguration' ? 'the bucket has no lifecycle rules' : `the server does not report lifecycle rules (${(err as Error).name})`;
    }
  }

  close(): void {
    this.client.destroy();
  }
}

/** A storage error that is not about the object itself: transient, retried with the queue's backoff. */
function unavailable(what: string, err: unknown): DocsiftError {
  if (err instanceof DocsiftError) return err;
  // Only a bucket's requests fail here, so the SDK is loaded.
  const status = err instanceof awsSdk().s3.S3ServiceException ? ` (HTTP ${err.$metadata.httpStatusCode ?? '?'} ${err.name})` : '';
  return new DocsiftError('STORE_UNAVAILABLE', `${what}: ${(err as Error).message}${status}`, { cause: err });
}
