import pg from 'pg';
import type { ResultRecord } from '../pipeline/index.js';
import type { ResultOutput } from './output.js';

/**
 * The docsift_results table, keyed by document id and pipeline version: a retried or
 * re-delivered job overwrites its row, a new pipeline version adds one. `docsift db migrate`
 * applies these statements; docs/POSTGRES.md describes the columns.
 */
export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE IF NOT EXISTS docsift_results (
        document_id      text        NOT NULL,
        pipeline_version text        NOT NULL,
        queue            text        NOT NULL,
        sha256           text        NOT NULL,
        filename         text        NOT NULL,
        source           text        NOT NULL,
        label            text        NOT NULL,
        document_type    text,
        fields           jsonb,
        record           jsonb       NOT NULL,
        completed_at     timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (document_id, pipeline_version)
      );
      CREATE INDEX IF NOT EXISTS docsift_results_sha256 ON docsift_results (sha256);
      CREATE INDEX IF NOT EXISTS docsift_results_completed_at ON docsift_results (completed_at);`,
  },
];

export async function migrate(pool: pg.Pool): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS docsift_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    // One migrator at a time, even when several nodes start together.
    await client.query('SELECT pg_advisory_lock(727274)');
    try {
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM docsift_migrations')).rows.map((r) => r.version));
      const applied: number[] = [];
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query('INSERT INTO docsift_migrations (version) VALUES ($1)', [m.version]);
        await client.query('COMMIT');
        applied.push(m.version);
      }
      return applied;
    } finally {
      await client.query('SELECT pg_advisory_unlock(727274)');
    }
  } finally {
    client.release();
  }
}

export function createPool(url: string): pg.Pool {
  return new pg.Pool({ connectionString: url, max: 4 });
}

export class PostgresOutput implements ResultOutput {
  readonly name = 'postgres';
  constructor(private readonly pool: pg.Pool) {}

  async write(record: ResultRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO docsift_results (document_id, pipeline_version, queue, sha256, filename, source, label, document_type, fields, record, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (document_id, pipeline_version) DO UPDATE SET
         queue = EXCLUDED.queue, sha256 = EXCLUDED.sha256, filename = EXCLUDED.filename, source = EXCLUDED.source,
         label = EXCLUDED.label, document_type = EXCLUDED.document_type, fields = EXCLUDED.fields,
         record = EXCLUDED.record, completed_at = EXCLUDED.completed_at, updated_at = now()`,
      [record.documentId, record.pipelineVersion, record.queue, record.sha256, record.filename, record.source,
        record.classification.label, record.documentType, record.fields === null ? null : JSON.stringify(record.fields),
        JSON.stringify(record), record.completedAt],
    );
  }
}
