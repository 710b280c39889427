import { getQueue, loadConfig, pipelineInfo } from '../../config/index.js';

/** Prints a queue's pipeline version and prompt versions as JSON, from the configuration alone. */
export async function pipelineCommand(options: { queue: string }): Promise<number> {
  const config = loadConfig();
  process.stdout.write(`${JSON.stringify(pipelineInfo(config, getQueue(config, options.queue)))}\n`);
  return 0;
}
