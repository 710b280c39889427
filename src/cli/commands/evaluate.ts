import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { getQueue, loadConfig } from '../../config/index.js';
import { createLogger } from '../../infra/logger.js';
import { toDocsiftError } from '../../infra/errors.js';
import { ModelEngine, type DecoderKind } from '../../model/index.js';
import { DocumentRunner, type ResultRecord } from '../../pipeline/index.js';
import { documentIdFor } from '../../queue/index.js';
import { scoreDocuments, scoreTiers, type LabelledDocument, type TierPassage } from '../../pipeline/evaluate.js';
import { TextExtractor } from '../../text/index.js';
import { Progress } from '../progress.js';

export interface EvalOptions {
  queue: string;
  type: string;
  results?: string;
  saveResults?: string;
  report?: string;
  decoder?: DecoderKind;
}

/** FILE plus FILE-stem.json (a labelled object, or a list holding one), as in ../shared/corpus/invoices. */
export function readLabelled(dir: string): Array<LabelledDocument & { file: string }> {
  const names = fs.readdirSync(dir).sort();
  const out: Array<LabelledDocument & { file: string }> = [];
  for (const name of names) {
    if (name.endsWith('.json')) continue;
    const label = path.join(dir, `${path.parse(name).name}.json`);
    if (!fs.existsSync(label)) continue;
    const raw = JSON.parse(fs.readFileSync(label, 'utf8')) as unknown;
    const expected = (Array.isArray(raw) ? raw[0] : raw) as Record<string, unknown>;
    out.push({ file: path.join(dir, name), filename: name, expected });
  }
  return out;
}

/**
 * Scores a model and prompt version on labelled documents: runs them through the real text
 * stage and pipeline in this process (no Redis, no worker), or scores result records already
 * produced (--results, JSON lines as `docsift enqueue --wait --json` prints).
 */
export async function evalCommand(dir: string, options: EvalOptions): Promise<number> {
  const config = loadConfig();
  const shipped = getQueue(config, options.queue);
  const queue = options.decoder ? { ...shipped, model: { ...shipped.model, decoder: options.decoder } } : shipped;
  const type = config.prompts.types.get(options.type);
  if (!type) throw new Error(`--type ${options.type}: no such document type (known: ${[...config.prompts.types.keys()].join(', ')})`);
  const labelled = readLabelled(dir);
  if (labelled.length === 0) throw new Error(`${dir} holds no labelled documents (FILE with FILE-stem.json beside it)`);
  const predictions = new Map<string, Record<string, unknown> | { error: string }>();
  const confidences = new Map<string, Record<string, number>>();
  // Each document's path through model tiers: from a record's tiers, or the one queue that read it.
  const paths = new Map<string, TierPassage[]>();
  const pathOf = (r: Partial<Pick<ResultRecord, 'tiers' | 'queue' | 'tokens' | 'timings'>>): TierPassage[] | undefined =>
    r.tiers?.map((t) => ({ queue: t.queue, tokens: t.tokens, modelMs: t.modelMs }))
    ?? (r.queue && r.tokens && r.timings ? [{ queue: r.queue, tokens: r.tokens, modelMs: r.timings.classifyMs + r.timings.extractMs }] : undefined);

  if (options.results) {
    for (const line of fs.readFileSync(options.results, 'utf8').split('\n').filter((l) => l.trim())) {
      const r = JSON.parse(line) as { filename?: string; file?: string; fields?: Record<string, unknown> | null; confidence?: Record<string, number> | null; code?: string; message?: string } & Partial<ResultRecord>;
      const name = r.filename ?? (r.file ? path.basename(r.file) : undefined);
      if (!name) continue;
      const passage = pathOf(r);
      if (passage) paths.set(name, passage);
      if (r.confidence) confidences.set(name, r.confidence);
      predictions.set(name, r.fields ? r.fields : { error: r.code ? `${r.code}: ${r.message ?? ''}` : 'no fields' });
    }
  } else {
    const modelPath = config.env.DOCSIFT_MODEL;
    if (!modelPath) throw new Error('DOCSIFT_MODEL is not set: eval runs the model in this process (or pass --results FILE)');
    const logger = createLogger({ level: config.env.DOCSIFT_LOG_LEVEL === 'info' ? 'warn' : config.env.DOCSIFT_LOG_LEVEL, destination: 'stderr' });
    const engine = await ModelEngine.load({ modelPath, sequences: 1, contextSize: queue.model.contextSize, threads: config.env.DOCSIFT_THREADS, gpu: config.env.DOCSIFT_GPU, logger });
    const extractor = new TextExtractor();
    const runner = new DocumentRunner(config, queue, engine, extractor);
    const saved: string[] = [];
    const bar = new Progress(labelled.length, 'eval');
    try {
      for (const [i, doc] of labelled.entries()) {
        try {
          const bytes = fs.readFileSync(doc.file);
          const sha256 = createHash('sha256').update(bytes).digest('hex');
          const documentId = documentIdFor(sha256, runner.pipelineVersion, type.name);
          const out = await runner.run({
            bytes, documentType: type.name,
            identity: { documentId, sha256, filename: doc.filename, source: 'eval', metadata: {}, jobId: documentId, attempt: 1 },
          });
          predictions.set(doc.filename, out.fields ?? {});
          paths.set(doc.filename, pathOf(out)!);
          if (out.confidence) confidences.set(doc.filename, out.confidence);
          saved.push(JSON.stringify({ filename: doc.filename, documentType: out.documentType, fields: out.fields, confidence: out.confidence, warnings: out.warnings, model: engine.info.file, decoder: queue.model.decoder, prompts: { [type.name]: type.version } }));
        } catch (err) {
          const e = toDocsiftError(err);
          predictions.set(doc.filename, { error: `${e.code}: ${e.message}` });
          saved.push(JSON.stringify({ filename: doc.filename, fields: null, code: e.code, message: e.message }));
        }
        bar.update(i + 1);
      }
    } finally {
      bar.finish();
      await extractor.close();
      await engine.dispose();
    }
    if (options.saveResults) fs.writeFileSync(options.saveResults, saved.join('\n') + '\n');
  }

  const fields = Object.keys((type.schema.properties ?? {}) as Record<string, unknown>);
  const report = scoreDocuments(labelled, predictions, fields, confidences);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(7);
  process.stdout.write(`field              labelled   exact  precision  recall\n`);
  for (const f of report.fields) process.stdout.write(`${f.field.padEnd(18)} ${String(f.labelled).padStart(8)} ${pct(f.exactMatch)} ${pct(f.precision).padStart(10)} ${pct(f.recall)}\n`);
  process.stdout.write('\n');
  for (const d of report.perDocument) {
    const misses = d.fields.filter((f) => !f.match).map((f) => f.field);
    process.stdout.write(`${d.pass ? 'pass' : 'FAIL'}  ${d.filename}${misses.length ? `  (wrong: ${misses.join(', ')})` : ''}${d.error ? `  [${d.error.slice(0, 80)}]` : ''}\n`);
  }
  process.stdout.write(`\n${report.passed}/${report.documents} documents pass; exact match over all labelled fields ${pct(report.overallExactMatch).trim()}\n`);
  if (report.calibration.some((b) => b.fields > 0)) {
    // Choose review.minConfidence where the exact-match rate of the buckets below it is too low to trust.
    process.stdout.write(`\nconfidence       fields   exact\n`);
    for (const b of report.calibration) process.stdout.write(`${`${b.from.toFixed(2)}-${b.to.toFixed(2)}`.padEnd(14)} ${String(b.fields).padStart(8)} ${b.fields ? pct(b.exactMatch) : '      -'}\n`);
  }
  const tiers = scoreTiers(report.perDocument, paths);
  // Only a tiered run has anything to compare between tiers.
  if (tiers.tiers.length > 1) {
    process.stdout.write(`\ntier             read   final   exact  tokens/doc  model-s/doc\n`);
    for (const t of tiers.tiers) process.stdout.write(`${t.queue.padEnd(14)} ${String(t.read).padStart(6)} ${String(t.final).padStart(7)} ${t.final ? pct(t.exactMatch) : '      -'} ${String(t.tokensPerDocument).padStart(11)} ${t.modelSecondsPerDocument.toFixed(2).padStart(12)}\n`);
    process.stdout.write(`${pct(tiers.escalatedShare).trim()} of documents went on to a larger tier\n`);
  }
  if (options.report) fs.writeFileSync(options.report, JSON.stringify({ ...report, tiers }, null, 2) + '\n');
  return 0;
}
