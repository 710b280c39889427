/**
 * Every Redis key docsift writes besides BullMQ's own, in one place. docs/JOB-PAYLOAD.md documents
 * them for back-office systems that enqueue and read results straight from Redis.
 */
export function keys(prefix: string) {
  return {
    /** BullMQ's prefix: queues live under `<prefix>:bull:<queue>:*`. */
    bull: `${prefix}:bull`,
    /** Enqueued bytes (DOCSIFT_STORE=redis), by content hash, with a TTL. */
    document: (sha256: string) => `${prefix}:doc:${sha256}`,
    /** Whether a key a job names is one of ours: `<prefix>:doc:<sha256>`, nothing else. */
    isDocumentKey: (key: string) => key.length === prefix.length + 69 && key.startsWith(`${prefix}:doc:`) && /^[0-9a-f]{64}$/.test(key.slice(prefix.length + 5)),
    /** An upload being streamed in, renamed to its document key once hashed; expires if abandoned. */
    upload: (id: string) => `${prefix}:upload:${id}`,
    /** Who still needs a document's stored bytes: a set of `<queue>:<jobId>`, with the bytes' TTL. */
    documentHolders: (sha256: string) => `${prefix}:doc:${sha256}:holders`,
    /** The result record of a completed document, JSON; expires after the queue's retention.recordSeconds. */
    result: (documentId: string) => `${prefix}:result:${documentId}`,
    /** The queue and job id of a document's latest job (a forced re-run gets a new job id), JSON. */
    latestJob: (documentId: string) => `${prefix}:job:${documentId}`,
    /** Webhook and callback deliveries that failed their last attempt (a list of JSON entries, newest DOCSIFT_DEADLETTER_MAX kept). */
    deadLetters: `${prefix}:deadletter:webhooks`,
    /** Documents held for review: a sorted set of document ids, scored by when they were held. */
    reviewPending: `${prefix}:review:pending`,
    /** The callback URL of a document held for review, sent the final record when a person decides. */
    reviewCallback: (documentId: string) => `${prefix}:review:callback:${documentId}`,
    /** Documents a person accepted or corrected: a sorted set of document ids, scored by when (newest DOCSIFT_REVIEW_HISTORY_MAX kept). */
    reviewDone: `${prefix}:review:done`,
    /** A document handed on to the next model tier: the first tier's result and reasons (JSON), until the final record is written. */
    escalation: (documentId: string) => `${prefix}:escalation:${documentId}`,
    /** A document whose fields a challenger model is answering: its own record (JSON), until the final record is written. */
    challenge: (documentId: string) => `${prefix}:challenge:${documentId}`,
    /** What an e-mail split into (its parts and their document ids, JSON), from the mail job's first run to its record. */
    mailPlan: (documentId: string) => `${prefix}:mail:${documentId}`,
    /**
     * IMAP: the UIDs of a mailbox folder whose documents are enqueued (a set, one per UIDVALIDITY:
     * a new one means the server renumbered the folder), and the claim one ingester holds on a
     * message while it enqueues it (expires, so a dead ingester's message is taken by another).
     */
    mailboxDone: (account: string, folder: string, uidValidity: string) => `${prefix}:imap:${account}:${encodeURIComponent(folder)}:${uidValidity}:done`,
    mailboxClaim: (account: string, folder: string, uidValidity: string, uid: number) => `${prefix}:imap:${account}:${encodeURIComponent(folder)}:${uidValidity}:claim:${uid}`,
    /** The failure record of a document that ended failed, JSON; removed when a re-run succeeds. */
    failure: (documentId: string) => `${prefix}:failure:${documentId}`,
    /**
     * A queue's pipeline version and prompt versions, JSON, written by every worker and API server
     * at start: what a foreign producer needs to compute the canonical job id. No TTL (one per queue).
     */
    pipeline: (queue: string) => `${prefix}:pipeline:${queue}`,
  };
}

export type Keys = ReturnType<typeof keys>;
