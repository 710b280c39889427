import fs from 'node:fs';
import path from 'node:path';
import S3rver from 's3rver';
import { freePort } from './redisServer.js';
import { tempDir } from './testEnv.js';

/**
 * An S3-compatible server (s3rver) on a private loopback port with one bucket, its objects as
 * files in a temporary folder. It signs requests with the fixed key pair S3RVER / S3RVER.
 */
export async function startS3Server(bucket: string): Promise<{ endpoint: string; port: number; env: Record<string, string>; objects(prefix?: string): string[]; stop(): Promise<void> }> {
  const port = await freePort();
  const directory = tempDir('s3rver');
  const server = new S3rver({ port, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  await server.run();
  const secretFile = path.join(tempDir('s3-secret'), 'secret');
  fs.writeFileSync(secretFile, 'S3RVER\n', { mode: 0o600 });
  return {
    endpoint: `http://127.0.0.1:${port}`, port,
    env: {
      DOCSIFT_S3_ENDPOINT: `http://127.0.0.1:${port}`, DOCSIFT_S3_BUCKET: bucket,
      DOCSIFT_S3_ACCESS_KEY_ID: 'S3RVER', DOCSIFT_S3_SECRET_ACCESS_KEY_FILE: secretFile,
    },
    /** Object keys in the bucket (s3rver keeps each as <key>._S3rver_object). */
    objects: (prefix = '') => {
      const root = path.join(directory, bucket);
      const out: string[] = [];
      const walk = (dir: string) => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) walk(p);
          else if (e.name.endsWith('._S3rver_object')) out.push(path.relative(root, p).slice(0, -'._S3rver_object'.length));
        }
      };
      if (fs.existsSync(root)) walk(root);
      return out.filter((k) => k.startsWith(prefix)).sort();
    },
    stop: () => server.close(),
  };
}
