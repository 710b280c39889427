import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../infra/errors.js';
import { parseEnv, type Env } from './env.js';
import { loadMailboxes, type Mailboxes } from './mailboxes.js';
import { loadPrompts, type Prompts } from './prompts.js';
import { loadQueues, type QueueConfig } from './queues.js';

export interface Config {
  readonly env: Env;
  readonly home: string;
  readonly prompts: Prompts;
  readonly queues: ReadonlyMap<string, QueueConfig>;
  /** IMAP accounts docsift mail (and docsift up) read, from <home>/mailboxes.json; null without that file. */
  readonly mailboxes: Mailboxes | null;
}

/** The folder of docsift's own package.json, found from this file in src/ or dist/src/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'docsift') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('docsift package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
    else for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Parses environment, queues/ and prompts/ once, checks that they fit together, and returns a
 * frozen object. Any problem throws a ConfigError naming the file and key.
 */
export function loadConfig(processEnv: NodeJS.ProcessEnv = process.env): Config {
  const env = parseEnv(processEnv);
  const home = path.resolve(env.DOCSIFT_HOME ?? packageRoot());
  const prompts = loadPrompts(path.join(home, 'prompts'));
  const queues = loadQueues(path.join(home, 'queues'));
  for (const queue of queues.values()) {
    if (queue.outputs.webhook && !env.DOCSIFT_WEBHOOK_SECRET) {
      throw new ConfigError(queue.file, 'outputs.webhook', 'needs DOCSIFT_WEBHOOK_SECRET in the environment to sign deliveries');
    }
    if (queue.outputs.s3 && !env.DOCSIFT_S3_BUCKET) {
      throw new ConfigError(queue.file, 'outputs.s3', 'needs DOCSIFT_S3_BUCKET (and its endpoint and credentials) in the environment');
    }
    if (queue.outputs.postgres && !env.DOCSIFT_DATABASE_URL) {
      throw new ConfigError(queue.file, 'outputs.postgres', 'needs DOCSIFT_DATABASE_URL in the environment');
    }
    if (queue.escalate) checkTiers(queue, queues, prompts);
    if (queue.challenge) {
      if (!queues.has(queue.challenge.queue) || queue.challenge.queue === queue.name) throw new ConfigError(queue.file, 'challenge.queue', `must name another queue (known: ${[...queues.keys()].filter((q) => q !== queue.name).join(', ')})`);
      if (queue.challenge.onDisagreement === 'escalate' && !queue.escalate) throw new ConfigError(queue.file, 'challenge.onDisagreement', '"escalate" needs escalate.to: the queue disagreements go to');
      if (queues.get(queue.challenge.queue)!.challenge) throw new ConfigError(queue.file, 'challenge.queue', `${queue.challenge.queue} has a challenger of its own; a challenger answers, it is not challenged`);
    }
    if (queue.pipeline.mode === 'extract' && !prompts.types.has(queue.pipeline.documentType)) {
      throw new ConfigError(queue.file, 'pipeline.documentType', `"${queue.pipeline.documentType}" has no folder in prompts/ (known: ${[...prompts.types.keys()].join(', ')})`);
    }
  }
  const mailboxes = loadMailboxes(path.join(home, 'mailboxes.json'));
  mailboxes?.accounts.forEach((account, i) => {
    if (!queues.has(account.queue)) throw new ConfigError(mailboxes.file, `accounts.${i}.queue`, `no such queue "${account.queue}" (known: ${[...queues.keys()].join(', ')})`);
    account.rules.forEach((rule, j) => {
      if (rule.documentType && !prompts.types.has(rule.documentType)) throw new ConfigError(mailboxes.file, `accounts.${i}.rules.${j}.documentType`, `"${rule.documentType}" has no folder in prompts/`);
    });
  });
  return deepFreeze({ env, home, prompts, queues, mailboxes });
}

/** The next tier exists, is not the queue itself, and the chain ends; escalated types exist. */
function checkTiers(queue: QueueConfig, queues: ReadonlyMap<string, QueueConfig>, prompts: Prompts): void {
  const seen = [queue.name];
  for (let next = queue.escalate; next; next = queues.get(next.to)?.escalate) {
    if (!queues.has(next.to)) throw new ConfigError(queue.file, 'escalate.to', `no such queue "${next.to}" (known: ${[...queues.keys()].join(', ')})`);
    if (seen.includes(next.to)) throw new ConfigError(queue.file, 'escalate.to', `the tiers go round in a circle: ${[...seen, next.to].join(' -> ')}`);
    seen.push(next.to);
  }
  for (const type of queue.escalate!.when.documentTypes) {
    if (!prompts.types.has(type)) throw new ConfigError(queue.file, 'escalate.when.documentTypes', `"${type}" has no folder in prompts/`);
  }
}

export function getQueue(config: Config, name: string): QueueConfig {
  const queue = config.queues.get(name);
  if (!queue) throw new ConfigError(path.join(config.home, 'queues'), name, `no such queue (known: ${[...config.queues.keys()].join(', ')})`);
  return queue;
}

/** The prompt versions a queue's pipeline uses, recorded on every result. */
export function promptVersions(config: Config, queue: QueueConfig): Record<string, string> {
  if (queue.pipeline.mode === 'extract') {
    return { [queue.pipeline.documentType]: config.prompts.types.get(queue.pipeline.documentType)!.version };
  }
  const versions: Record<string, string> = { classify: config.prompts.classify.version };
  for (const label of config.prompts.classify.labels) {
    const type = config.prompts.types.get(label);
    if (type) versions[label] = type.version;
  }
  return versions;
}

/**
 * A short hash of everything that shapes a queue's results: pipeline, model settings, prompt
 * texts and schemas. The same document through the same pipeline version is one job; change a
 * prompt and the document may be processed again.
 */
export function pipelineVersion(config: Config, queue: QueueConfig): string {
  const used = Object.keys(promptVersions(config, queue)).filter((k) => k !== 'classify');
  const material = {
    queue: queue.name,
    pipeline: queue.pipeline,
    model: queue.model,
    // What changes the text a document is read as (not limits or pool sizes).
    ocr: { enabled: queue.ocr.enabled, languages: queue.ocr.languages, dpi: queue.ocr.dpi, minCharsPerPage: queue.ocr.minCharsPerPage },
    // Named only when not the default, so that queues reading with pdf.js keep their version.
    ...(queue.pdf.engine !== 'pdf.js' ? { pdf: queue.pdf.engine } : {}),
    classify: queue.pipeline.mode === 'classify-extract'
      ? { version: config.prompts.classify.version, labels: config.prompts.classify.labels, instructions: config.prompts.classify.instructions }
      : null,
    // A queue that escalates returns the next tier's results: that tier's version is part of this one's.
    escalate: queue.escalate ? { fields: queue.escalate.fields, when: queue.escalate.when, to: pipelineVersion(config, getQueue(config, queue.escalate.to)) } : null,
    challenge: queue.challenge ? { onDisagreement: queue.challenge.onDisagreement, by: pipelineVersion(config, getQueue(config, queue.challenge.queue)) } : null,
    types: used.map((name) => {
      const t = config.prompts.types.get(name)!;
      return { name, version: t.version, instructions: t.instructions, schema: t.schema, rules: t.rules };
    }),
  };
  return createHash('sha256').update(JSON.stringify(material)).digest('hex').slice(0, 12);
}

/** A queue's pipeline version and prompt versions: what names its documents (published under keys.pipeline). */
export function pipelineInfo(config: Config, queue: QueueConfig): { queue: string; pipelineVersion: string; prompts: Record<string, string> } {
  return { queue: queue.name, pipelineVersion: pipelineVersion(config, queue), prompts: promptVersions(config, queue) };
}
