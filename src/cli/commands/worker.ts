import { describeRedis, redisTarget } from '../../queue/index.js';
import { startWorker } from '../../worker/index.js';
import { createRuntime, untilStopSignal } from '../runtime.js';

export interface WorkerOptions {
  queue: string;
  concurrency?: number;
  graceMs: number;
  metricsPort: number;
  metricsHost: string;
}

/**
 * One worker process. On SIGTERM/SIGINT: stop taking jobs, let in-flight ones finish for up to
 * --grace-ms, hand the rest back to the queue, dispose the model, close Redis, exit 0.
 */
export async function workerCommand(options: WorkerOptions): Promise<number> {
  const rt = createRuntime('stdout');
  const modelPath = rt.config.env.DOCSIFT_MODEL;
  if (!modelPath) {
    throw new Error('DOCSIFT_MODEL is not set: point it at a .gguf model file (for a try-out: docsift make-test-model test-model.gguf)');
  }
  const running = await startWorker({
    config: rt.config, queueName: options.queue, keys: rt.keys, logger: rt.logger, modelPath, metricsPort: options.metricsPort, metricsHost: options.metricsHost, concurrency: options.concurrency,
  });
  rt.logger.info({ queue: running.queue.name, redis: describeRedis(redisTarget(rt.config.env)) }, 'worker ready');
  const signal = await untilStopSignal();
  rt.logger.info({ signal, graceMs: options.graceMs }, 'shutting down');
  await running.stop(options.graceMs);
  rt.logger.info('worker stopped');
  return 0;
}
