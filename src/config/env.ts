import { isIP } from 'node:net';
import os from 'node:os';
import { z } from 'zod';
import { parseWith } from './configFile.js';

/**
 * What an example file or a tutorial puts where a secret goes. Such a value is refused: a
 * deployment copied from deploy/ must not run with a secret every reader of this repository knows.
 */
const PLACEHOLDER = /change[-_ ]?(me|it)|replace[-_ ]?(me|with)|placeholder|your[-_ ]?(secret|token|password)|^<.*>$|^(x+|secret|password|example|test|default)$/i;

export function isPlaceholder(value: string): boolean {
  return PLACEHOLDER.test(value);
}

const secret = (min: number) => z.string().min(min, `use at least ${min} characters`)
  .refine((v) => !isPlaceholder(v), 'is a placeholder (change-me, replace-me, …); set a real, random secret');
/** A DOCSIFT_CALLBACK_HOSTS entry: host name, *.suffix, IP, or CIDR with a prefix that fits the address. */
function isDeliveryEntry(entry: string): boolean {
  const [address, prefix, extra] = entry.split('/');
  const type = isIP(address ?? '');
  if (type) return extra === undefined && (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (type === 4 ? 32 : 128)));
  return prefix === undefined && /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(entry);
}

/** The password in a URL's userinfo, if any. */
const urlPassword = (url: string) => {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
};

/** `host:port,host:port`: Redis sentinels or Cluster seed nodes. */
const hostPorts = z.string().transform((s) => s.split(',').map((t) => t.trim()).filter(Boolean)).pipe(z.array(
  z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'each entry is host:port').transform((e) => {
    const at = e.lastIndexOf(':');
    return { host: e.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(e.slice(at + 1)) };
  }),
).min(1, 'name at least one host:port'));

/**
 * Every environment variable docsift reads, with its default. Nothing else in the code reads
 * process.env: it gets these values through the Config object.
 */
export const EnvSchema = z.object({
  /** Redis for queues, stored documents and results. */
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
    .refine((u) => !isPlaceholder(urlPassword(u)), 'its password is a placeholder; set the real one').default('redis://127.0.0.1:6379').describe('Redis for queues and results (rediss:// for TLS; a private CA via NODE_EXTRA_CA_CERTS)'),
  /**
   * Sentinels watching the Redis primary (host:port, comma-separated). REDIS_URL's host is then the
   * master group's name (`redis://:password@mymaster/0`); its credentials, database and TLS apply
   * to the primary, and the sentinels say which server that is after a failover.
   */
  REDIS_SENTINELS: hostPorts.optional().describe('Sentinels (host:port,…); REDIS_URL\'s host is then the master group name'),
  /** Password of the sentinels themselves, when they require one (requirepass in sentinel.conf). */
  REDIS_SENTINEL_PASSWORD: secret(1).optional().describe('password of the sentinels, when they require one'),
  /**
   * Seed nodes of a Redis Cluster (host:port, comma-separated; the others are discovered).
   * REDIS_URL then gives credentials and TLS only. Keys are hash-tagged per queue (docs/SCALING.md).
   */
  REDIS_CLUSTER_NODES: hostPorts.optional().describe('Redis Cluster seed nodes (host:port,…); REDIS_URL gives credentials and TLS'),
  /** Path of the .gguf model the worker loads. Only the worker needs it. */
  DOCSIFT_MODEL: z.string().min(1).optional().describe('path of the .gguf model the worker loads'),
  /**
   * Which llama.cpp build to load. auto: the first installed build that can run on this GPU and
   * driver (local build, CUDA prebuilt, CUDA fallback, Vulkan, CPU; src/model/gpu/plan.ts); an
   * explicit backend that cannot run here stops the worker with the reason and the fix.
   */
  DOCSIFT_GPU: z.enum(['auto', 'cuda', 'vulkan', 'metal', 'cpu']).default('auto').describe('auto (the first build that runs on this GPU and driver; docsift doctor shows which) | cuda | vulkan | metal | cpu (refused when it cannot run here)'),
  /**
   * llama.cpp threads. Default: all cores but one, at least one. llama.cpp's own default takes
   * every core, and on a small box it then competes with the Node event loop and PDF parsing:
   * measured 35x slower on 2 cores (../shared/SPIKES.md).
   */
  DOCSIFT_THREADS: z.coerce.number().int().min(1).max(1024).default(Math.max(1, os.availableParallelism() - 1)).describe('llama.cpp threads [cores - 1]'),
  /** This node's name on records and in docsift report (several workers on one host may share it). */
  DOCSIFT_NODE_NAME: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).default(os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128) || 'node').describe('this node\'s name on result records and in docsift report [the hostname]'),
  /** Prefix of every Redis key docsift and BullMQ write, so several installations can share a Redis. */
  DOCSIFT_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/).default('docsift').describe('prefix of every Redis key'),
  /** Where enqueued bytes wait for a worker: a Redis key with a TTL, a file on a shared filesystem, or an object in S3-compatible storage. */
  DOCSIFT_STORE: z.enum(['redis', 'fs', 's3']).default('redis').describe('where enqueued bytes wait: redis | fs | s3'),
  /** The bucket for DOCSIFT_STORE=s3 (and queue outputs of type s3). */
  DOCSIFT_S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens').optional().describe('bucket for DOCSIFT_STORE=s3 and s3 outputs'),
  /** An S3-compatible server (MinIO, Ceph RGW): http(s)://host:port. Without it, AWS S3 in DOCSIFT_S3_REGION. */
  DOCSIFT_S3_ENDPOINT: z.string().regex(/^https?:\/\/[^/?#]+\/?$/, 'http(s)://host[:port], nothing after').optional().describe('S3-compatible server, http(s)://host:port [AWS S3]'),
  DOCSIFT_S3_REGION: z.string().regex(/^[a-z0-9-]+$/).default('us-east-1').describe('S3 region'),
  /** Key prefix of docsift's objects in the bucket ("folders" ending in /; may be empty). */
  DOCSIFT_S3_PREFIX: z.string().regex(/^([A-Za-z0-9._-]+\/)*$/, 'folder names each ending in /, e.g. docsift/').default('docsift/').describe('key prefix of docsift\'s objects in the bucket'),
  /** Bucket in the path (http://host/bucket/key) rather than the host name. Default: on when DOCSIFT_S3_ENDPOINT is set (MinIO needs it). */
  DOCSIFT_S3_PATH_STYLE: z.enum(['true', 'false']).transform((v) => v === 'true').optional().describe('true | false: bucket in the path [true with DOCSIFT_S3_ENDPOINT]'),
  DOCSIFT_S3_ACCESS_KEY_ID: z.string().min(1).optional().describe('S3 access key id'),
  DOCSIFT_S3_SECRET_ACCESS_KEY: secret(8).optional().describe('S3 secret key'),
  /** A file holding the secret key instead (a mounted Kubernetes or Docker secret); read at start, not followed if a link. */
  DOCSIFT_S3_SECRET_ACCESS_KEY_FILE: z.string().min(1).optional().describe('file holding the S3 secret key instead'),
  /** Folder for DOCSIFT_STORE=fs; every worker must see it at the same path (NFS, SMB, local disk). */
  DOCSIFT_STORE_DIR: z.string().min(1).default('data/documents').describe('folder for DOCSIFT_STORE=fs'),
  /**
   * Folders besides DOCSIFT_STORE_DIR under which a job's ref.path may name a file
   * (comma-separated), for back-office systems that enqueue with plain BullMQ and a shared
   * filesystem. A path anywhere else, a symbolic link, or anything but a regular file fails the
   * job PATH_NOT_ALLOWED without being read.
   */
  DOCSIFT_DOCUMENT_ROOTS: z.string().transform((s) => s.split(',').map((t) => t.trim()).filter(Boolean)).default([]).describe('folders besides DOCSIFT_STORE_DIR a job\'s ref.path may name, comma-separated'),
  /** How long stored bytes are kept (seconds). Redis expires them; the fs store leaves cleanup to the operator. */
  DOCSIFT_STORE_TTL_S: z.coerce.number().int().min(60).default(7 * 24 * 3600).describe('seconds stored bytes are kept at most'),
  /** Folder holding queues/ and prompts/. Default: the docsift package folder. */
  DOCSIFT_HOME: z.string().min(1).optional().describe('folder with queues/ and prompts/ [the docsift package]'),
  /** Bearer tokens the HTTP API accepts, comma-separated. Without any, the API only binds to loopback. */
  DOCSIFT_API_TOKENS: z.string().transform((s) => s.split(',').map((t) => t.trim()).filter(Boolean))
    .pipe(z.array(z.string().min(16, 'each token needs at least 16 characters').refine((v) => !isPlaceholder(v), 'a token is a placeholder; set real, random tokens'))).default([]).describe('bearer tokens of the HTTP API, comma-separated'),
  /**
   * Folders under which POST /v1/documents may name files by path (comma-separated). Empty:
   * only uploads are accepted.
   */
  DOCSIFT_API_ROOTS: z.string().transform((s) => s.split(',').map((t) => t.trim()).filter(Boolean)).default([]).describe('folders the API may read files from by path, comma-separated'),
  /** Dead-lettered webhook and callback deliveries kept (the newest); older ones are dropped. */
  DOCSIFT_DEADLETTER_MAX: z.coerce.number().int().min(1).default(10_000).describe('dead-lettered deliveries kept, the newest'),
  /** Reviewed documents kept in the review history (the newest; docsift export-training reads it). */
  DOCSIFT_REVIEW_HISTORY_MAX: z.coerce.number().int().min(1).default(100_000).describe('reviewed documents kept in the review history, the newest'),
  /** Most bytes one upload request may carry, all its files together; past it the API answers 413. */
  DOCSIFT_API_MAX_REQUEST_BYTES: z.coerce.number().int().min(1).default(200 * 1024 * 1024).describe('bytes one upload request may carry'),
  /** Most files one upload request may carry; past it the API answers 413. */
  DOCSIFT_API_MAX_FILES: z.coerce.number().int().min(1).max(10_000).default(100).describe('files one upload request may carry'),
  /** Shared secret for HMAC-SHA256 signatures of queue webhook deliveries. */
  DOCSIFT_WEBHOOK_SECRET: secret(16).optional().describe('HMAC secret signing queue webhook deliveries'),
  /**
   * Where per-document callbackUrl deliveries may go (comma-separated): host names, exact or
   * `*.example.com`, and IPs or CIDRs (`10.1.0.0/16`) that may be reached although they are not
   * public (loopback, private, link-local). Every delivery, queue webhooks too, is refused an
   * address that is not public unless an IP or CIDR entry allows it. Empty: no callbacks.
   */
  DOCSIFT_CALLBACK_HOSTS: z.string().transform((s) => s.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean))
    .pipe(z.array(z.string().refine(isDeliveryEntry, 'each entry is a host name, *.suffix, an IP, or an IP/prefix CIDR'))).default([]).describe('where deliveries may go: host names, *.suffix, IPs/CIDRs for non-public addresses'),
  /** Shared secret for HMAC-SHA256 signatures of callback deliveries; callbacks are refused without it. */
  DOCSIFT_CALLBACK_SECRET: secret(16).optional().describe('HMAC secret signing callback deliveries (callbacks are refused without it)'),
  /** PostgreSQL for queues whose outputs include postgres, e.g. postgres://user@127.0.0.1:5432/docsift. */
  DOCSIFT_DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
    .refine((u) => !isPlaceholder(urlPassword(u)), 'its password is a placeholder; set the real one').optional().describe('postgres:// URL for queues with the postgres output'),
  /** Basic-auth credentials of Bull Board (docsift board, and /board in the API). Both are required to serve it. */
  DOCSIFT_BOARD_USER: z.string().min(1).optional().describe('basic-auth user of Bull Board'),
  DOCSIFT_BOARD_PASSWORD: secret(12).optional().describe('basic-auth password of Bull Board'),
  /** Where `docsift models pull` puts models and `models list` looks. */
  DOCSIFT_MODELS_DIR: z.string().min(1).default('models').describe('where models pull saves models'),
  DOCSIFT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('fatal | error | warn | info | debug | trace | silent'),
}).superRefine((env, ctx) => {
  if (env.DOCSIFT_STORE === 's3' && !env.DOCSIFT_S3_BUCKET) ctx.addIssue({ code: 'custom', path: ['DOCSIFT_S3_BUCKET'], message: 'DOCSIFT_STORE=s3 needs a bucket' });
  if (env.REDIS_SENTINELS && env.REDIS_CLUSTER_NODES) ctx.addIssue({ code: 'custom', path: ['REDIS_CLUSTER_NODES'], message: 'set either REDIS_SENTINELS or REDIS_CLUSTER_NODES, not both' });
  if (!URL.canParse(env.REDIS_URL)) ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: 'is not a valid URL' });
  else if (env.REDIS_SENTINELS && !/^[A-Za-z0-9._-]+$/.test(new URL(env.REDIS_URL).hostname)) ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: 'with REDIS_SENTINELS its host is the master group\'s name (redis://:password@mymaster/0)' });
  else if (env.REDIS_CLUSTER_NODES && !/^\/?0?$/.test(new URL(env.REDIS_URL).pathname)) ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: 'a Redis Cluster has only database 0' });
});

export type Env = z.infer<typeof EnvSchema>;

export function parseEnv(env: NodeJS.ProcessEnv): Env {
  // Empty strings mean "unset" (a blank line in an .env file must not become an empty model path).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  return parseWith('environment', EnvSchema, cleaned);
}

/**
 * One line per variable for `--help`: its description in EnvSchema, and its default as the schema
 * gives it (so each is declared once, above). A bracket in the text replaces a default that
 * depends on the machine or the install.
 */

export function envHelp(names: ReadonlyArray<keyof Env> = Object.keys(EnvSchema.shape) as Array<keyof Env>): string {
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return names.map((name) => {
    const schema = EnvSchema.shape[name];
    const parsed = schema.safeParse(undefined);
    const shown = parsed.success && Array.isArray(parsed.data) ? parsed.data.join(',') : parsed.data;
    const text = schema.description ?? '';
    const fallback = text.includes('[') || shown === undefined || shown === '' ? '' : ` [${String(shown)}]`;
    return `  ${name.padEnd(width)}${text}${fallback}`;
  }).join('\n');
}
