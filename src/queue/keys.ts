import type { Config } from '../config/index.js';

/**
 * How keys are laid out. On a Redis Cluster every key a script or transaction touches together must
 * hash to one slot: there, the id in a key is a hash tag (`{…}`), so a document's bytes and their
 * holders share a slot, and each queue's BullMQ keys are tagged with its flow group (a queue and the
 * queues it escalates to or is challenged by: BullMQ's flows touch parent and child queues in one
 * script), while different groups spread over the nodes.
 */
export interface KeyLayout {
  cluster?: boolean;
  /** The flow group (its first queue by name) of each queue; a queue not listed is its own. */
  flowGroups?: ReadonlyMap<string, string>;
}

/**
 * Every Redis key docsift writes besides BullMQ's own, in one place. docs/JOB-PAYLOAD.md documents
 * them for back-office systems that enqueue and read results straight from Redis.
 */
export function keys(prefix: string, layout: KeyLayout = {}) {
  const tag = (id: string) => (layout.cluster ? `{${id}}` : id);
  const documentKey = new RegExp(`^${prefix}:doc:${layout.cluster ? '\\{([0-9a-f]{64})\\}' : '([0-9a-f]{64})'}$`);
  return {
    cluster: Boolean(layout.cluster),
    /** BullMQ's prefix for a queue: `<prefix>:bull`, so queues live under `<prefix>:bull:<queue>:*`; on a Cluster `<prefix>:bull:{<flow group>}`. */
    bull: (queue: string) => (layout.cluster ? `${prefix}:bull:{${layout.flowGroups?.get(queue) ?? queue}}` : `${prefix}:bull`),
    /** Enqueued bytes (DOCSIFT_STORE=redis), by content hash, with a TTL. */
    document: (sha256: string) => `${prefix}:doc:${tag(sha256)}`,
    /** The hash of a key a job names when it is one of ours (`<prefix>:doc:<sha256>`), else null. */
    documentSha: (key: string) => documentKey.exec(key)?.[1] ?? null,
    /** An upload being streamed in, moved to its document key once hashed; expires if abandoned. */
    upload: (id: string) => `${prefix}:upload:${tag(id)}`,
    /** Who still needs a document's stored bytes: a set of `<queue>:<jobId>`, with the bytes' TTL. */
    documentHolders: (sha256: string) => `${prefix}:doc:${tag(sha256)}:holders`,
    /** Set while the S3 store deletes a document's object, so that a put of the same bytes waits for the delete instead of racing it. */
    documentDeleting: (sha256: string) => `${prefix}:doc:${tag(sha256)}:deleting`,
    /** The result record of a completed document, JSON; expires after the queue's retention.recordSeconds. */
    result: (documentId: string) => `${prefix}:result:${tag(documentId)}`,
    /** The queue and job id of a document's latest job (a forced re-run gets a new job id), JSON. */
    latestJob: (documentId: string) => `${prefix}:job:${tag(documentId)}`,
    /** Webhook and callback deliveries that failed their last attempt (a list of JSON entries, newest DOCSIFT_DEADLETTER_MAX kept). */
    deadLetters: `${prefix}:deadletter:webhooks`,
    /** Documents held for review: a sorted set of document ids, scored by when they were held. */
    reviewPending: `${prefix}:review:pending`,
    /** The callback URL of a document held for review, sent the final record when a person decides. */
    reviewCallback: (documentId: string) => `${prefix}:review:callback:${tag(documentId)}`,
    /** Documents a person accepted or corrected: a sorted set of document ids, scored by when (newest DOCSIFT_REVIEW_HISTORY_MAX kept). */
    reviewDone: `${prefix}:review:done`,
    /** A document handed on to the next model tier: the first tier's result and reasons (JSON), until the final record is written. */
    escalation: (documentId: string) => `${prefix}:escalation:${tag(documentId)}`,
    /** A document whose fields a challenger model is answering: its own record (JSON), until the final record is written. */
    challenge: (documentId: string) => `${prefix}:challenge:${tag(documentId)}`,
    /** What an e-mail split into (its parts and their document ids, JSON), from the mail job's first run to its record. */
    mailPlan: (documentId: string) => `${prefix}:mail:${tag(documentId)}`,
    /**
     * IMAP: the UIDs of a mailbox folder whose documents are enqueued (a set, one per UIDVALIDITY:
     * a new one means the server renumbered the folder), and the claim one ingester holds on a
     * message while it enqueues it (expires, so a dead ingester's message is taken by another).
     */
    mailboxDone: (account: string, folder: string, uidValidity: string) => `${prefix}:imap:${account}:${encodeURIComponent(folder)}:${uidValidity}:done`,
    mailboxClaim: (account: string, folder: string, uidValidity: string, uid: number) => `${prefix}:imap:${account}:${encodeURIComponent(folder)}:${uidValidity}:claim:${uid}`,
    /** The failure record of a document that ended failed, JSON; removed when a re-run succeeds. */
    failure: (documentId: string) => `${prefix}:failure:${tag(documentId)}`,
    /**
     * A queue's pipeline version and prompt versions, JSON, written by every worker and API server
     * at start: what a foreign producer needs to compute the canonical job id. No TTL (one per queue).
     */
    pipeline: (queue: string) => `${prefix}:pipeline:${queue}`,
  };
}

export type Keys = ReturnType<typeof keys>;

/** The flow group of every queue (see KeyLayout): queues joined by escalate.to or challenge.queue, named by the first of them. */
export function flowGroups(config: Pick<Config, 'queues'>): Map<string, string> {
  const parent = new Map<string, string>();
  const find = (q: string): string => {
    const p = parent.get(q) ?? q;
    return p === q ? q : find(p);
  };
  const join = (a: string, b: string) => {
    const [x, y] = [find(a), find(b)].sort();
    if (x !== y) parent.set(y!, x!);
  };
  for (const q of config.queues.values()) {
    if (q.escalate) join(q.name, q.escalate.to);
    if (q.challenge) join(q.name, q.challenge.queue);
  }
  return new Map([...config.queues.keys()].map((q) => [q, find(q)]));
}

/** The key layout an installation's configuration asks for (a Cluster when REDIS_CLUSTER_NODES is set). */
export function keysFor(config: Pick<Config, 'queues' | 'env'>): Keys {
  return keys(config.env.DOCSIFT_PREFIX, config.env.REDIS_CLUSTER_NODES ? { cluster: true, flowGroups: flowGroups(config) } : {});
}
