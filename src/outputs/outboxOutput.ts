import fs from 'node:fs/promises';
import path from 'node:path';
import type { ResultRecord } from '../pipeline/index.js';
import type { ResultOutput } from './output.js';

/** <dir>/<documentId>.json, written to a temporary name and renamed, so readers never see half a file. */
export class OutboxOutput implements ResultOutput {
  readonly name = 'outbox';
  readonly dir: string;
  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  async write(record: ResultRecord): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const target = path.join(this.dir, `${record.documentId}.json`);
    const tmp = path.join(this.dir, `.${record.documentId}.${process.pid}.tmp`);
    await fs.writeFile(tmp, JSON.stringify(record, null, 2) + '\n');
    await fs.rename(tmp, target);
  }
}
