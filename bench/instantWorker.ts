/**
 * One simulated worker node for bench/scale.ts: a DocumentWorker with the instant model (answers
 * at once), configured from the environment like `docsift worker`, so that what it costs Redis is
 * exactly a real worker's Redis work. Prints "ready", then "done <n>" on SIGTERM.
 */
import { getQueue, loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { Metrics } from '../src/infra/metrics.js';
import { createDeliveryQueue, createOutputs } from '../src/outputs/index.js';
import { connectRedis, createRedis, keysFor, redisTarget } from '../src/queue/index.js';
import { TextExtractor } from '../src/text/index.js';
import { DocumentWorker } from '../src/worker/documentWorker.js';
import { InstantEngine } from './instantEngine.js';

const config = loadConfig();
const queue = getQueue(config, process.env.SCALE_QUEUE ?? 'documents');
const keys = keysFor(config);
const target = redisTarget(config.env);
const redis = createRedis(target, { forWorker: true });
await connectRedis(redis, target);
// A queue's "auto" concurrency follows the model's sequences; the instant model has as many as asked.
const concurrency = queue.concurrency === 'auto' ? 8 : queue.concurrency;
const engine = new InstantEngine(config, concurrency);
const deliveries = createDeliveryQueue(redis, keys);
const extractor = new TextExtractor();
const worker = new DocumentWorker({
  config, queue, redis, keys, engine, extractor, logger: createLogger({ level: 'silent', destination: 'stderr' }),
  concurrency, metrics: new Metrics(), outputs: createOutputs(queue, { redis, keys, deliveries }),
});
let done = 0;
worker.worker.on('completed', () => void done++);
worker.run();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void (async () => {
    await worker.close(5000);
    await deliveries.close();
    await extractor.close();
    await redis.quit();
    process.stdout.write(`done ${done}\n`);
    process.exit(0);
  })();
});
