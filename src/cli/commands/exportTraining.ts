import fs from 'node:fs';
import { getQueue } from '../../config/index.js';
import { renderExtractPrompt, documentText, type ResultRecord } from '../../pipeline/index.js';
import { getJson } from '../../queue/connection.js';
import { documentRoots, loadDocument, storedRef } from '../../queue/index.js';
import { TextExtractor, textLimits } from '../../text/index.js';
import { createRuntime, openRedis } from '../runtime.js';

/**
 * Reviewed results (accepted or corrected by a person) as JSONL chat examples for fine-tuning:
 * the same system and user prompts the pipeline sends, and the final fields as the answer. The
 * document text is extracted again from the stored bytes; documents whose bytes have expired
 * (DOCSIFT_STORE_TTL_S) are skipped and counted.
 */
export async function exportTrainingCommand(options: { since?: string; out?: string }): Promise<number> {
  const rt = createRuntime('stderr');
  const since = options.since ? Date.parse(options.since) : 0;
  if (Number.isNaN(since)) throw new Error(`--since ${options.since}: not a date (use YYYY-MM-DD or an ISO timestamp)`);
  const redis = await openRedis(rt);
  const extractor = new TextExtractor();
  const out = options.out ? fs.createWriteStream(options.out) : process.stdout;
  let written = 0;
  let skipped = 0;
  try {
    for (const id of await redis.zrangebyscore(rt.keys.reviewDone, since, '+inf')) {
      const record = await getJson<ResultRecord>(redis, rt.keys.result(id));
      const type = record?.documentType ? rt.config.prompts.types.get(record.documentType) : undefined;
      if (!record || !type || !record.fields || !record.review || record.review.status === 'pending') { skipped++; continue; }
      const queue = getQueue(rt.config, record.queue);
      let bytes: Buffer;
      try {
        bytes = await loadDocument(redis, storedRef(rt.config.env, rt.keys, record.sha256), { keys: rt.keys, roots: documentRoots(rt.config.env), maxBytes: queue.limits.maxBytes, s3: rt.s3 });
      } catch {
        skipped++;
        continue;
      }
      const text = await extractor.extract(bytes, textLimits(queue));
      const { system, user } = renderExtractPrompt(type, documentText(text));
      out.write(JSON.stringify({
        messages: [
          { role: 'system', content: system },
          { role: 'user', content: user },
          { role: 'assistant', content: JSON.stringify(record.fields) },
        ],
        metadata: { documentId: record.documentId, documentType: type.name, promptVersion: type.version, review: record.review.status, by: record.review.by, at: record.review.at },
      }) + '\n');
      written++;
    }
  } finally {
    await extractor.close();
    await redis.quit();
    if (out !== process.stdout) await new Promise((r) => (out as fs.WriteStream).end(r));
  }
  process.stderr.write(`exported ${written} reviewed example(s)${skipped ? `; skipped ${skipped} (bytes expired, or no fields)` : ''}\n`);
  return 0;
}
