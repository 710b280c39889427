import { loadConfig } from '../../config/index.js';
import { createPool, migrate } from '../../outputs/index.js';

/** Creates or updates docsift's tables in DOCSIFT_DATABASE_URL; safe to run on every deploy. */
export async function dbMigrateCommand(): Promise<number> {
  const config = loadConfig();
  const url = config.env.DOCSIFT_DATABASE_URL;
  if (!url) throw new Error('DOCSIFT_DATABASE_URL is not set (e.g. postgres://docsift@127.0.0.1:5432/docsift)');
  const pool = createPool(url);
  try {
    const applied = await migrate(pool);
    process.stdout.write(applied.length ? `applied migration(s) ${applied.join(', ')}\n` : 'database is up to date\n');
    return 0;
  } finally {
    await pool.end();
  }
}
