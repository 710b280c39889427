import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redisServer.js';
import { REPO, tempDir, testModelPath, uniquePrefix, until } from '../helpers/testEnv.js';

/**
 * REDIS_URL with a password and TLS (rediss://) works in every command: a Redis of the test's own
 * that speaks only TLS and wants a password, a certificate made for it, and the CLI as a user runs
 * it (a private CA is trusted through Node's NODE_EXTRA_CA_CERTS).
 */
const BIN = path.join(REPO, 'dist/src/cli/main.js');
const PASSWORD = 'tls-redis-pw-8f3k2m9q';
const dir = tempDir('redis-tls');
const cert = path.join(dir, 'cert.pem');
let redis: ChildProcess;
let port: number;
const children: ChildProcess[] = [];
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  port = await freePort();
  // The password through standard input, as deploy/ does: never in argv.
  redis = spawn('bash', ['-c', `exec redis-server - --port 0 --tls-port ${port} --tls-cert-file ${cert} --tls-key-file ${path.join(dir, 'key.pem')} --tls-auth-clients no --dir ${dir} --save "" <<< "requirepass ${PASSWORD}"`], { stdio: 'ignore' });
  await until(() => new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  }), 10_000);
  env = {
    ...process.env, REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1:${port}`, NODE_EXTRA_CA_CERTS: cert,
    DOCSIFT_HOME: REPO, DOCSIFT_PREFIX: uniquePrefix('tls'), DOCSIFT_MODEL: testModelPath(), DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'warn',
  };
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  redis?.kill('SIGKILL');
});

const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, [BIN, ...args], { env: { ...env, ...extra }, encoding: 'utf8', cwd: dir, timeout: 120_000 });

describe('Redis with a password over TLS', () => {
  it('doctor, worker, enqueue --wait, result, review, deadletter and the API all work through rediss://', async () => {
    const doctor = cli(['doctor']);
    expect(doctor.stdout).toMatch(new RegExp(`^ok +redis: reachable at rediss://\\*\\*\\*@127\\.0\\.0\\.1:${port}$`, 'm'));
    expect(doctor.stdout).not.toContain(PASSWORD);

    const worker = spawn(process.execPath, [BIN, 'worker', '--metrics-port', '0'], { env, stdio: 'ignore' });
    children.push(worker);
    const file = path.join(dir, 'invoice.txt');
    fs.writeFileSync(file, 'INVOICE 4711\nWidgets Ltd\nTotal 12.50 EUR\n');
    const enqueued = cli(['enqueue', '--wait', '--json', '--timeout', '90', file]);
    expect(enqueued.status, enqueued.stderr).toBe(0);
    const record = JSON.parse(enqueued.stdout.trim());
    expect(record.state).toBe('done');
    const result = cli(['result', record.documentId]);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).documentId).toBe(record.documentId);
    expect(cli(['review', 'list']).status).toBe(0);
    expect(cli(['deadletter', 'list']).stdout).toContain('no dead-lettered deliveries');

    const apiPort = await freePort();
    const api = spawn(process.execPath, [BIN, 'api', '--port', String(apiPort), '--no-board'], { env, stdio: 'ignore' });
    children.push(api);
    await until(async () => (await fetch(`http://127.0.0.1:${apiPort}/readyz`).catch(() => null))?.status === 200, 30_000);
    const status = await (await fetch(`http://127.0.0.1:${apiPort}/v1/documents/${record.documentId}`)).json() as { state: string };
    expect(status.state).toBe('done');
  });

  it('a wrong password or a plain redis:// URL fails clearly, without printing the password', () => {
    const wrong = cli(['doctor'], { REDIS_URL: `rediss://:not-the-password-x1@127.0.0.1:${port}` });
    expect(wrong.status).toBe(1);
    expect(wrong.stdout).toMatch(/^error +redis: cannot reach Redis at rediss:\/\/\*\*\*@127\.0\.0\.1:\d+: .*(WRONGPASS|invalid username-password)/m);
    expect(wrong.stdout).not.toContain('not-the-password-x1');
    const plain = cli(['result', 'x'], { REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}` });
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).toContain('cannot reach Redis at redis://***@127.0.0.1');
  });
});
