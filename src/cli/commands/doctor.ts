import path from 'node:path';
import { loadConfig, type Config } from '../../config/index.js';
import { ConfigError } from '../../infra/errors.js';
import { checkModelFile, createLlama, toGrammarSchema } from '../../model/index.js';
import { connectRedis, createRedis, redactUrl } from '../../queue/index.js';

type Level = 'ok' | 'warn' | 'error';
export interface Finding { level: Level; check: string; message: string }

/**
 * Checks a node before it takes work: configuration, Redis (reachable, persistent, noeviction),
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
  } catch (err) {
    say('error', 'config', err instanceof ConfigError ? err.message : (err as Error).message);
    return findings;
  }

  const redis = createRedis(config.env.REDIS_URL, { forWorker: false });
  try {
    await connectRedis(redis, config.env.REDIS_URL);
    say('ok', 'redis', `reachable at ${redactUrl(config.env.REDIS_URL)}`);
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
  } catch (err) {
    say('error', 'redis', (err as Error).message);
  } finally {
    redis.disconnect();
  }

  let llama: Awaited<ReturnType<typeof createLlama>> | undefined;
  try {
    llama = await createLlama({ gpu: config.env.DOCSIFT_GPU, threads: config.env.DOCSIFT_THREADS });
    if (llama.gpu === false) {
      const ram = await llama.getRamState();
      say('ok', 'backend', `CPU (no CUDA, Vulkan or Metal device found), ${(ram.free / 1024 ** 3).toFixed(1)} GB RAM free, ${config.env.DOCSIFT_THREADS} llama thread(s)`);
    } else {
      const vram = await llama.getVramState();
      say('ok', 'backend', `${llama.gpu}: ${(vram.free / 1024 ** 3).toFixed(1)} of ${(vram.total / 1024 ** 3).toFixed(1)} GB free`);
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

export async function doctorCommand(): Promise<number> {
  const findings = await runDoctor(process.env);
  for (const f of findings) process.stdout.write(`${f.level.padEnd(5)} ${f.check}: ${f.message}\n`);
  return findings.some((f) => f.level === 'error') ? 1 : 0;
}
