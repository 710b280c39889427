import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../config/index.js';
import { FolderWatcher } from '../../ingest/folder/index.js';
import { startMailboxes } from '../../ingest/mail/index.js';
import { assertSafeBind, buildApi } from '../../ingest/http/apiServer.js';
import { createLogger, type Logger } from '../../infra/logger.js';
import { localModels } from '../../model/index.js';
import { connectRedis, createRedis, describeRedis, keysFor, redactUrl, S3Bucket, redisTarget, topologyOf } from '../../queue/index.js';
import { startWorker } from '../../worker/index.js';
import { openAllQueues, untilStopSignal } from '../runtime.js';

export interface UpOptions {
  host: string;
  port: number;
  queue: string;
  watchDir: string;
  watch: boolean;
  boardWrite: boolean;
}

/** Generated secrets of a single-box node, one per file, readable by its owner only. */
const SECRETS_DIR = path.join('data', 'secrets');

/**
 * A secret kept in data/secrets/<name> (mode 0600 in a 0700 folder), generated on first use and
 * the same on every later start, so the private Redis's data and a bookmarked board login keep
 * working. Never logged: the log names the file.
 */
function storedSecret(name: string): { value: string; file: string } {
  const dir = path.resolve(SECRETS_DIR);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, name);
  try {
    return { value: fs.readFileSync(file, 'utf8').trim(), file };
  } catch {
    const value = randomBytes(18).toString('base64url');
    fs.writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return { value, file };
  }
}

/**
 * Everything for a single box in one process: a worker, the API with Bull Board at /board, and a
 * watched folder. Starts a private Redis when REDIS_URL answers not and redis-server is installed.
 */
export async function upCommand(options: UpOptions): Promise<number> {
  let config = loadConfig();
  const logger = createLogger({ level: config.env.DOCSIFT_LOG_LEVEL, destination: 'stdout' });
  assertSafeBind(options.host, config.env.DOCSIFT_API_TOKENS);

  let modelPath = config.env.DOCSIFT_MODEL;
  if (!modelPath) {
    const found = localModels(path.resolve(config.env.DOCSIFT_MODELS_DIR));
    if (found.length === 0) {
      process.stderr.write([
        'docsift: no model. docsift needs a GGUF instruct model; either',
        '  docsift models pull qwen2.5-1.5b        (downloads about 1 GB into ./models; needs internet)',
        '  DOCSIFT_MODEL=/path/to/model.gguf npm start   (a file you copied over)',
        'For a try-out without a real model: docsift make-test-model test-model.gguf, then DOCSIFT_MODEL=test-model.gguf.',
        '',
      ].join('\n'));
      return 1;
    }
    modelPath = found[0]!.file;
    logger.info({ model: modelPath }, `DOCSIFT_MODEL is not set: using ${path.basename(modelPath)} from ${config.env.DOCSIFT_MODELS_DIR}/`);
  }

  // Sentinel and Cluster are the operator's: only a plain REDIS_URL gets a private Redis.
  const privateRedis = topologyOf(redisTarget(config.env)) === 'standalone' ? await ensureRedis(config.env.REDIS_URL, logger) : undefined;
  if (privateRedis) config = loadConfig({ ...process.env, REDIS_URL: privateRedis.url });

  const rt = { config, logger, keys: keysFor(config), s3: S3Bucket.fromEnv(config.env) };
  const running = await startWorker({ config, queueName: options.queue, keys: rt.keys, logger, modelPath });
  const { redis, queues } = await openAllQueues(rt);
  // One delivery queue and pool in the process: the worker's, shared with the board and the review desk.
  const { deliveries } = running.outputs;

  let board = config.env.DOCSIFT_BOARD_USER && config.env.DOCSIFT_BOARD_PASSWORD
    ? { user: config.env.DOCSIFT_BOARD_USER, password: config.env.DOCSIFT_BOARD_PASSWORD }
    : undefined;
  if (!board) {
    const password = storedSecret('board-password');
    board = { user: 'docsift', password: password.value };
    logger.info({ user: board.user, passwordFile: password.file }, `board user docsift, password in ${password.file} (set DOCSIFT_BOARD_USER and DOCSIFT_BOARD_PASSWORD to choose them)`);
  }
  const app = await buildApi({
    config, redis, keys: rt.keys, queues, logger, metrics: running.metrics,
    board: { queues: [...[...queues.values()].map((q) => q.queue), deliveries], readOnly: !options.boardWrite, ...board },
    outputs: running.outputs,
  });
  const address = await app.listen({ host: options.host, port: options.port });

  let watcher: FolderWatcher | undefined;
  if (options.watch) {
    watcher = new FolderWatcher(config, queues, redis, rt.keys, {
      dir: path.resolve(options.watchDir), queue: options.queue, stableMs: 2000, intervalMs: 1000, useEvents: true, duplicates: 'skip',
    }, logger.child({ component: 'watch' }));
    await watcher.start();
  }
  // The section of up's configuration for mail: mailboxes.json, when it exists.
  const mailboxes = config.mailboxes
    ? await startMailboxes(config, new Map([...queues].map(([name, q]) => [name, q.enqueuer])), redis, rt.keys, logger)
    : undefined;
  logger.info({
    mailboxes: config.mailboxes?.accounts.map((a) => a.name) ?? 'off',
    api: address, board: `${address}/board`, docs: `${address}/docs`, metrics: `${address}/metrics`,
    inbox: watcher ? path.resolve(options.watchDir, 'inbox') : 'off', redis: describeRedis(redisTarget(config.env)), model: path.basename(modelPath),
  }, 'docsift is up');

  await untilStopSignal();
  logger.info('shutting down');
  await watcher?.stop();
  await mailboxes?.stop();
  await app.close();
  await running.stop(30_000);
  for (const q of queues.values()) await q.queue.close();
  await redis.quit();
  await privateRedis?.stop();
  logger.info('stopped');
  return 0;
}

/**
 * Returns nothing when REDIS_URL answers. Otherwise starts redis-server (AOF on, noeviction, data
 * in ./data/redis) on REDIS_URL's port when it is a local address, or says how to get Redis.
 */
async function ensureRedis(url: string, logger: Logger): Promise<{ url: string; stop(): Promise<void> } | undefined> {
  const probe = createRedis(url, { forWorker: false });
  try {
    await connectRedis(probe, url);
    return undefined;
  } catch {
    // not reachable: fall through
  } finally {
    probe.disconnect();
  }
  const parsed = new URL(url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(parsed.hostname);
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!local || !installed) {
    throw new Error(`Redis at ${redactUrl(url)} is unreachable${local ? ' and redis-server is not installed' : ''}. ` +
      `Install it (Debian/Ubuntu: apt-get install redis-server; it must run with maxmemory-policy noeviction) or point REDIS_URL at a running Redis.`);
  }
  const dir = path.resolve('data', 'redis');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const port = parsed.port || '6379';
  // The password goes in a config file only its owner reads: on the command line, every local
  // user would see it in ps.
  const password = storedSecret('redis-password');
  const conf = path.join(dir, 'redis.conf');
  fs.writeFileSync(conf, [
    `port ${port}`, 'bind 127.0.0.1', `dir "${dir}"`, 'appendonly yes', 'maxmemory-policy noeviction', 'save ""', `requirepass ${password.value}`, '',
  ].join('\n'), { mode: 0o600 });
  fs.chmodSync(conf, 0o600);
  const child: ChildProcess = spawn('redis-server', [conf], { stdio: 'ignore' });
  const privateUrl = `redis://:${password.value}@127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const r = createRedis(privateUrl, { forWorker: false });
    try {
      await connectRedis(r, privateUrl);
      r.disconnect();
      logger.warn({ redis: redactUrl(privateUrl), data: dir, passwordFile: password.file }, `REDIS_URL was unreachable: started a private Redis on 127.0.0.1:${port} with AOF persistence in ${dir} and the password in ${password.file}`);
      return {
        url: privateUrl,
        stop: () => new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM'); // redis-server flushes the AOF on SIGTERM
        }),
      };
    } catch {
      r.disconnect();
      if (child.exitCode !== null) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`could not start redis-server on port ${port} (is the port taken?)`);
}
