import path from 'node:path';
import { installedLanguages, loadConfig, type Config } from '../../config/index.js';
import { ocrWorkers } from '../../text/index.js';
import { ConfigError } from '../../infra/errors.js';
import { checkModelFile, findBinaries, loadLlama, planBackend, probeHost, toGrammarSchema } from '../../model/index.js';
import { gpuFindings } from '../../model/gpu/report.js';
import type { RedisClient } from '../../queue/connection.js';
import { connectRedis, createRedis, describeRedis, redisTarget } from '../../queue/index.js';

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
        ? `on: ${ocr.languages.join('+')} (installed: ${installedLanguages().join(', ')}), ${ocr.dpi} dpi, up to ${ocrWorkers(ocr.workers)} OCR process(es) of ${ocr.pageMemoryMb} MB per worker`
        : 'off: scans fail EMPTY_TEXT and images UNSUPPORTED_FORMAT');
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
    const cfg = async (key: string) => {
      try {
        const r = (await redis.config('GET', key)) as string[];
        return r[1] ?? '';
      } catch {
        return null; // CONFIG disabled (managed Redis): cannot tell
      }
    };
    const [aof, save, policy] = [await cfg('appendonly'), await cfg('save'), await cfg('maxmemory-policy')];
    if (aof === null) say('warn', 'redis persistence', 'CONFIG GET is not allowed; cannot check persistence and eviction');
    else if (aof !== 'yes' && !save) say('warn', 'redis persistence', 'neither AOF nor RDB snapshots are on: queued documents and results are lost when Redis restarts (set appendonly yes)');
    else say('ok', 'redis persistence', aof === 'yes' ? 'AOF on' : `RDB snapshots (${save}); AOF loses less`);
    if (policy !== null) {
      if (policy !== 'noeviction') say('error', 'redis eviction', `maxmemory-policy is ${policy}: Redis may evict BullMQ's keys and lose jobs; BullMQ needs noeviction`);
      else say('ok', 'redis eviction', 'maxmemory-policy noeviction');
    }
    const memory = parseInfo(await redis.info('memory'));
    const used = Number(memory['used_memory'] ?? 0);
    const max = Number(memory['maxmemory'] ?? 0);
    if (max > 0) say(used > 0.8 * max ? 'warn' : 'ok', 'redis memory', `${mb(used)} used of maxmemory ${mb(max)}${used > 0.8 * max ? ': past 80%, with noeviction Redis soon refuses writes (shorten retention, add memory)' : ''}`);
    else say('warn', 'redis memory', `${mb(used)} used, no maxmemory set: Redis grows until the host runs out (set maxmemory; docsift's records expire after retention.recordSeconds)`);
    const counts = await countKeys(redis, config.env.DOCSIFT_PREFIX);
    say('ok', 'redis keys', `under ${config.env.DOCSIFT_PREFIX}: ${Object.entries(counts.byKind).sort(([a], [b]) => a.localeCompare(b)).map(([kind, n]) => `${n} ${kind}`).join(', ') || 'none'}; ${counts.persistent} of docsift's own without expiry${counts.truncated ? ` (first ${counts.scanned} keys scanned)` : ''}`);
  } catch (err) {
    say('error', 'redis', (err as Error).message);
  } finally {
    redis.disconnect();
  }

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
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    scanned += found.length;
    const own = found.filter((k) => !k.startsWith(`${prefix}:bull:`));
    for (const key of found) {
      const kind = key.slice(prefix.length + 1).split(':')[0]!;
      const label = kind === 'bull' ? 'BullMQ' : kind === 'doc' ? (key.endsWith(':holders') ? 'document holders' : 'stored documents') : kind;
      byKind[label] = (byKind[label] ?? 0) + 1;
    }
    if (own.length) {
      const pipeline = redis.pipeline();
      for (const key of own) pipeline.ttl(key);
      for (const [, ttl] of (await pipeline.exec()) ?? []) if (ttl === -1) persistent++;
    }
  } while (cursor !== '0' && scanned < SCAN_LIMIT);
  return { byKind, persistent, scanned, truncated: cursor !== '0' };
}

export async function doctorCommand(): Promise<number> {
  const findings = await runDoctor(process.env);
  for (const f of findings) process.stdout.write(`${f.level.padEnd(5)} ${f.check}: ${f.message}\n`);
  return findings.some((f) => f.level === 'error') ? 1 : 0;
}
