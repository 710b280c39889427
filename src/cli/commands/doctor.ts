import path from 'node:path';
import { installedLanguages, libraryMissing, loadConfig, type Config } from '../../config/index.js';
import { ocrEngine, ocrWorkers } from '../../text/index.js';
import { ConfigError } from '../../infra/errors.js';
import { checkModelFile, findBinaries, loadLlama, planBackend, probeHost, toGrammarSchema } from '../../model/index.js';
import { gpuFindings } from '../../model/gpu/report.js';
import type { RedisClient } from '../../queue/connection.js';
import { Cluster, Redis } from 'ioredis';
import { connectRedis, createRedis, describeRedis, flowGroups, keysFor, redisTarget, S3Bucket, scanKeys, topologyOf, type RedisTarget } from '../../queue/index.js';

type Level = 'ok' | 'warn' | 'error';
export interface Finding { level: Level; check: string; message: string }

/**
 * Checks a node before it takes work: configuration, Redis (reachable, persistent, noeviction,
 * memory, docsift's keys by kind and how many never expire),
 * the llama.cpp backend and its memory, the model, and every schema's grammar. One line per
 * finding; exit status 1 when any is an error.
 */
export async function runDoctor(env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const findings: Finding[] = [];
  const say = (level: Level, check: string, message: string) => findings.push({ level, check, message });

  let config: Config;
  try {
    config = loadConfig(env);
    say('ok', 'config', `${config.queues.size} queue(s) and ${config.prompts.types.size} document type(s) in ${config.home} are valid`);
    for (const queue of config.queues.values()) {
      const { ocr } = queue;
      say('ok', `ocr ${queue.name}`, ocr.enabled
        ? `on: ${ocr.languages.join('+')} (installed: ${installedLanguages().join(', ')}), ${ocr.dpi} dpi, ${ocrEngine(ocr.engine)}, up to ${ocrWorkers(ocr.workers)} OCR process(es) of ${ocr.pageMemoryMb} MB per worker`
        : 'off: scans fail EMPTY_TEXT and images UNSUPPORTED_FORMAT');
      const poppler = libraryMissing('poppler');
      say('ok', `pdf ${queue.name}`, queue.pdf.engine === 'poppler'
        ? 'engine poppler (libpoppler-glib)'
        : `engine pdf.js; poppler ${poppler ? `not installed here (${poppler})` : 'installed here: pdf.engine "poppler" reads text layers 2-12x faster'}`);
    }
  } catch (err) {
    say('error', 'config', err instanceof ConfigError ? err.message : (err as Error).message);
    return findings;
  }

  const target = redisTarget(config.env);
  const redis = createRedis(target, { forWorker: false });
  try {
    await connectRedis(redis, target);
    say('ok', 'redis', `reachable at ${describeRedis(target)}`);
    await topologyFindings(redis, target, config, say);
    // Every primary holds queues on a Cluster: each must persist and never evict.
    const primaries = redis instanceof Cluster ? redis.nodes('master') : [redis];
    for (const node of primaries) {
      const where = primaries.length > 1 ? ` ${node.options.host}:${node.options.port}` : '';
      const cfg = async (key: string) => {
        try {
          const r = (await node.config('GET', key)) as string[];
          return r[1] ?? '';
        } catch {
          return null; // CONFIG disabled (managed Redis): cannot tell
        }
      };
      const [aof, save, policy] = [await cfg('appendonly'), await cfg('save'), await cfg('maxmemory-policy')];
      if (aof === null) say('warn', `redis persistence${where}`, 'CONFIG GET is not allowed; cannot check persistence and eviction');
      else if (aof !== 'yes' && !save) say('warn', `redis persistence${where}`, 'neither AOF nor RDB snapshots are on: queued documents and results are lost when Redis restarts (set appendonly yes)');
      else say('ok', `redis persistence${where}`, aof === 'yes' ? 'AOF on' : `RDB snapshots (${save}); AOF loses less`);
      if (policy !== null) {
        if (policy !== 'noeviction') say('error', `redis eviction${where}`, `maxmemory-policy is ${policy}: Redis may evict BullMQ's keys and lose jobs; BullMQ needs noeviction`);
        else say('ok', `redis eviction${where}`, 'maxmemory-policy noeviction');
      }
      const memory = parseInfo(await node.info('memory'));
      const used = Number(memory['used_memory'] ?? 0);
      const max = Number(memory['maxmemory'] ?? 0);
      if (max > 0) say(used > 0.8 * max ? 'warn' : 'ok', `redis memory${where}`, `${mb(used)} used of maxmemory ${mb(max)}${used > 0.8 * max ? ': past 80%, with noeviction Redis soon refuses writes (shorten retention, add memory)' : ''}`);
      else say('warn', `redis memory${where}`, `${mb(used)} used, no maxmemory set: Redis grows until the host runs out (set maxmemory; docsift's records expire after retention.recordSeconds)`);
    }
    const counts = await countKeys(redis, config.env.DOCSIFT_PREFIX);
    say('ok', 'redis keys', `under ${config.env.DOCSIFT_PREFIX}: ${Object.entries(counts.byKind).sort(([a], [b]) => a.localeCompare(b)).map(([kind, n]) => `${n} ${kind}`).join(', ') || 'none'}; ${counts.persistent} of docsift's own without expiry${counts.truncated ? ` (first ${counts.scanned} keys scanned)` : ''}`);
  } catch (err) {
    say('error', 'redis', (err as Error).message);
  } finally {
    redis.disconnect();
  }
  await storeFindings(config, say);

  const host = await probeHost();
  const plan = planBackend(config.env.DOCSIFT_GPU, host, findBinaries());
  for (const f of gpuFindings(host, plan)) say(f.level, f.check, f.message);
  if (plan.error) return findings;

  let llama: Awaited<ReturnType<typeof loadLlama>>['llama'] | undefined;
  try {
    const started = await loadLlama({ gpu: config.env.DOCSIFT_GPU, threads: config.env.DOCSIFT_THREADS, host });
    llama = started.llama;
    for (const failure of started.loaded.failed) say('warn', 'backend test decode', `${failure}; the worker skips it`);
    if (llama.gpu === false) {
      const ram = await llama.getRamState();
      say('ok', 'backend', `CPU, ${(ram.free / 1024 ** 3).toFixed(1)} GB RAM free, ${config.env.DOCSIFT_THREADS} llama thread(s)`);
    } else {
      const vram = await llama.getVramState();
      say('ok', 'backend', `${llama.gpu} (${started.loaded.binary}): ${(vram.free / 1024 ** 3).toFixed(1)} of ${(vram.total / 1024 ** 3).toFixed(1)} GB free`);
    }
    for (const type of config.prompts.types.values()) {
      try {
        await llama.createGrammarForJsonSchema(toGrammarSchema(type.schema) as never);
      } catch (err) {
        say('error', 'schema', `${type.files.schema}: the model grammar cannot be built: ${(err as Error).message}`);
      }
    }
    say('ok', 'schemas', `${config.prompts.types.size} schema(s) convert to model grammars`);
    const modelPath = config.env.DOCSIFT_MODEL;
    if (!modelPath) {
      say('warn', 'model', 'DOCSIFT_MODEL is not set: workers cannot start (docsift models pull qwen2.5-1.5b, or point it at a .gguf file)');
    } else {
      try {
        checkModelFile(path.resolve(modelPath));
        const model = await llama.loadModel({ modelPath: path.resolve(modelPath) });
        say('ok', 'model', `${modelPath} loads (${(model.size / 1024 ** 3).toFixed(2)} GB, train context ${model.trainContextSize})`);
        await model.dispose();
      } catch (err) {
        say('error', 'model', (err as Error).message);
      }
    }
  } catch (err) {
    say('error', 'backend', `llama.cpp cannot start: ${(err as Error).message}`);
  } finally {
    await llama?.dispose();
  }
  return findings;
}

type Say = (level: Level, check: string, message: string) => void;

/**
 * What docsift is connected to: one server (and not a replica, which refuses writes), a Sentinel
 * group (the primary the sentinels name, its replicas, whether they can fail over), or a Cluster
 * (every slot served, replicas, and which node each queue group's slot is on).
 */
async function topologyFindings(redis: RedisClient, target: RedisTarget, config: Config, say: Say): Promise<void> {
  switch (topologyOf(target)) {
    case 'standalone': {
      const role = parseInfo(await redis.info('replication'))['role'];
      if (role === 'slave') say('error', 'redis topology', 'REDIS_URL names a replica, which refuses writes: name the primary, or its sentinels (REDIS_SENTINELS)');
      else say('ok', 'redis topology', 'one server (no failover: a Redis restart pauses every node until it is back; Sentinel or Cluster: docs/SCALING.md)');
      return;
    }
    case 'sentinel': return sentinelFindings(target, say);
    case 'cluster': return clusterFindings(redis as Cluster, config, say);
  }
}

/** The primary the sentinels name, its replicas, how many sentinels answer, and Sentinel's own CKQUORUM. */
async function sentinelFindings(target: RedisTarget, say: Say): Promise<void> {
  const master = new URL(target.url).hostname;
  let reachable = 0;
  let quorum: string | null = null;
  let primary = '';
  let replicas = 0;
  for (const s of target.sentinels!) {
    const sentinel = new Redis({ host: s.host, port: s.port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, ...(target.sentinelPassword ? { password: target.sentinelPassword } : {}), ...(target.url.startsWith('rediss:') ? { tls: {} } : {}) });
    sentinel.on('error', () => undefined);
    try {
      await sentinel.connect();
      reachable++;
      if (quorum === null) {
        quorum = String(await sentinel.call('SENTINEL', 'CKQUORUM', master).catch((err: Error) => `NO ${err.message}`));
        primary = ((await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', master)) as string[] | null)?.join(':') ?? '';
        replicas = ((await sentinel.call('SENTINEL', 'REPLICAS', master)) as unknown[]).length;
      }
    } catch (err) {
      say('warn', 'redis sentinel', `${s.host}:${s.port} does not answer: ${(err as Error).message}`);
    } finally {
      sentinel.disconnect();
    }
  }
  if (quorum?.startsWith('OK')) say('ok', 'redis topology', `Sentinel master "${master}": primary ${primary}, ${replicas} replica(s), ${reachable} of ${target.sentinels!.length} sentinels answer; ${quorum}`);
  else say('error', 'redis topology', `Sentinel master "${master}" cannot fail over: ${quorum ?? 'no sentinel answers'}`);
  if (quorum?.startsWith('OK') && replicas === 0) say('warn', 'redis topology', 'no replica: a failover has nowhere to go');
}

/** The Cluster's state, primaries and replicas, and which node serves each queue group (its queues' BullMQ keys share one slot). */
async function clusterFindings(cluster: Cluster, config: Config, say: Say): Promise<void> {
  const info = parseInfo(String(await cluster.cluster('INFO')));
  const primaries = cluster.nodes('master');
  const replicas = cluster.nodes('slave').length;
  if (info['cluster_state'] !== 'ok') say('error', 'redis topology', `Cluster state ${info['cluster_state']}: ${info['cluster_slots_assigned']} of 16384 slots assigned, ${info['cluster_slots_fail']} failing`);
  else say('ok', 'redis topology', `Cluster: ${primaries.length} primaries, ${replicas} replica(s), all 16384 slots served`);
  if (replicas === 0) say('warn', 'redis topology', 'no replicas: a primary that fails stops the queues whose slots it serves until it is back');
  const slots = await cluster.cluster('SLOTS');
  const keys = keysFor(config);
  const groups = new Map<string, string[]>();
  for (const [queue, group] of flowGroups(config)) groups.set(group, [...(groups.get(group) ?? []), queue]);
  const placed = await Promise.all([...groups].map(async ([group, queues]) => {
    const slot = Number(await cluster.cluster('KEYSLOT', keys.bull(group)));
    const owner = slots.find(([from, to]) => slot >= from && slot <= to)?.[2];
    return { queues, node: owner ? `${owner[0]}:${owner[1]}` : '?', slot };
  }));
  say('ok', 'redis queue slots', placed.map((p) => `${p.queues.join('+')} → ${p.node} (slot ${p.slot})`).join('; '));
  if (placed.length > 1 && new Set(placed.map((p) => p.node)).size === 1 && primaries.length > 1) say('warn', 'redis queue slots', 'every queue group is on one node: that node carries all queue traffic (queue names decide the slot; docs/SCALING.md)');
}

/** The document store: with S3, the bucket answers, a probe object goes in, comes back and goes, and whether a lifecycle rule bounds what is left behind. */
async function storeFindings(config: Config, say: Say): Promise<void> {
  let s3: S3Bucket | undefined;
  try {
    s3 = S3Bucket.fromEnv(config.env);
  } catch (err) {
    say('error', 's3', (err as Error).message);
    return;
  }
  if (!s3) return;
  try {
    await s3.check();
    const probe = `${s3.prefix}doctor-probe-${process.pid}-${Date.now()}`;
    await s3.put(probe, Buffer.from('docsift doctor'));
    const back = await s3.get(probe, 100);
    await s3.delete(probe);
    if (back.toString() !== 'docsift doctor') throw new Error('a probe object came back different');
    say('ok', 's3', `bucket ${s3.bucket} at ${s3.endpoint}: write, read and delete under ${s3.prefix} work`);
    const lifecycle = await s3.expiryDays(`${s3.prefix}doc/`);
    if (typeof lifecycle === 'number') say('ok', 's3 lifecycle', `objects under ${s3.prefix}doc/ expire after ${lifecycle} day(s)`);
    else say('warn', 's3 lifecycle', `${lifecycle}: bytes a job leaves behind (its holders expired before it was final) stay until deleted; add a rule expiring ${s3.prefix}doc/ after ${Math.ceil(config.env.DOCSIFT_STORE_TTL_S / 86400)} day(s) (DOCSIFT_STORE_TTL_S)`);
  } catch (err) {
    say('error', 's3', (err as Error).message);
  } finally {
    s3.close();
  }
}

const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MB`;

function parseInfo(info: string): Record<string, string> {
  return Object.fromEntries(info.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

/** Scanned this many keys at most: doctor must answer in seconds on a Redis holding millions. */
const SCAN_LIMIT = 200_000;

/**
 * docsift's keys by kind (the second part of `<prefix>:<kind>:…`), and how many of docsift's
 * own (not BullMQ's, whose jobs BullMQ removes by count and age) have no expiry: results held
 * for review, records written with retention.recordSeconds 0, and anything a bug left behind.
 */
async function countKeys(redis: RedisClient, prefix: string): Promise<{ byKind: Record<string, number>; persistent: number; scanned: number; truncated: boolean }> {
  const byKind: Record<string, number> = {};
  let persistent = 0;
  let scanned = 0;
  let truncated = false;
  for await (const { keys: found, node } of scanKeys(redis, `${prefix}:*`)) {
    if (scanned >= SCAN_LIMIT) {
      truncated = true;
      break;
    }
    scanned += found.length;
    const own = found.filter((k) => !k.startsWith(`${prefix}:bull:`));
    for (const key of found) {
      const kind = key.slice(prefix.length + 1).split(':')[0]!;
      const label = kind === 'bull' ? 'BullMQ' : kind === 'doc' ? (key.endsWith(':holders') ? 'document holders' : 'stored documents') : kind;
      byKind[label] = (byKind[label] ?? 0) + 1;
    }
    if (own.length) {
      const pipeline = node.pipeline();
      for (const key of own) pipeline.ttl(key);
      for (const [, ttl] of (await pipeline.exec()) ?? []) if (ttl === -1) persistent++;
    }
  }
  return { byKind, persistent, scanned, truncated };
}

export async function doctorCommand(): Promise<number> {
  const findings = await runDoctor(process.env);
  for (const f of findings) process.stdout.write(`${f.level.padEnd(5)} ${f.check}: ${f.message}\n`);
  return findings.some((f) => f.level === 'error') ? 1 : 0;
}
