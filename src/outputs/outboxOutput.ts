import fs from 'node:fs/promises';
import path from 'node:path';
import type { ResultRecord } from '../pipeline/index.js';
import type { S3Bucket } from '../queue/s3.js';
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

/** <prefix><documentId>.json in the installation's bucket; a PUT is atomic, so readers never see half a record. */
export class S3OutboxOutput implements ResultOutput {
  readonly name = 's3';
  constructor(private readonly s3: S3Bucket, private readonly prefix: string) {}

  async write(record: ResultRecord): Promise<void> {
    await this.s3.put(`${this.prefix}${record.documentId}.json`, Buffer.from(JSON.stringify(record, null, 2) + '\n'), 'application/json');
  }
}
