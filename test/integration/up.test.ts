import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CORPUS, REPO, tempDir, testModelPath, uniquePrefix } from '../helpers/testEnv.js';
import { freePort } from '../helpers/redisServer.js';

const BIN = path.join(REPO, 'dist/src/cli/main.js');

describe('docsift up', () => {
  it('with no model, explains how to get one and exits 1', () => {
    const run = spawnSync(process.execPath, [BIN, 'up'], {
      cwd: tempDir('up'), encoding: 'utf8',
      env: { ...process.env, DOCSIFT_MODEL: '', DOCSIFT_MODELS_DIR: tempDir('nomodels'), DOCSIFT_HOME: REPO },
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('docsift models pull qwen2.5-1.5b');
    expect(run.stderr).toContain('DOCSIFT_MODEL=');
  });

  it('starts a private Redis when REDIS_URL does not answer, serves API and board, processes the inbox, stops cleanly', async () => {
    const cwd = tempDir('up');
    const [redisPort, apiPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [BIN, 'up', '--port', String(apiPort)], {
      cwd, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${redisPort}`, DOCSIFT_MODEL: testModelPath(), DOCSIFT_HOME: REPO, DOCSIFT_THREADS: '1', DOCSIFT_PREFIX: uniquePrefix('up'), DOCSIFT_LOG_LEVEL: 'info' },
    });
    let log = '';
    child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    const until = async (check: () => boolean, what: string, ms = 60_000) => {
      const deadline = Date.now() + ms;
      while (!check()) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what}:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      await until(() => log.includes('docsift is up'), 'did not come up');
      expect(log).toContain(`started a private Redis on 127.0.0.1:${redisPort}`);
      expect(fs.readdirSync(path.join(cwd, 'data', 'redis')).some((f) => f.startsWith('appendonly'))).toBe(true);
      // Generated secrets live in 0600 files, never in the log.
      const secrets = path.join(cwd, 'data', 'secrets');
      const password = fs.readFileSync(path.join(secrets, 'board-password'), 'utf8').trim();
      const redisPassword = fs.readFileSync(path.join(secrets, 'redis-password'), 'utf8').trim();
      for (const f of ['board-password', 'redis-password']) expect(fs.statSync(path.join(secrets, f)).mode & 0o777, f).toBe(0o600);
      expect(fs.statSync(path.join(cwd, 'data', 'redis', 'redis.conf')).mode & 0o777).toBe(0o600);
      expect(log).not.toContain(password);
      expect(log).not.toContain(redisPassword);
      // The private Redis wants its password.
      expect(spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout).toContain('NOAUTH');
      expect(spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: redisPassword } }).stdout.trim()).toBe('PONG');
      const base = `http://127.0.0.1:${apiPort}`;
      expect((await fetch(`${base}/v1/queues`)).status).toBe(200);
      expect((await fetch(`${base}/board`)).status).toBe(401);
      const basic = { authorization: `Basic ${Buffer.from(`docsift:${password}`).toString('base64')}` };
      const board = await fetch(`${base}/board/api/queues`, { headers: basic });
      expect(board.status).toBe(200);
      // Read-only unless --board-write: the board's "add job" is refused.
      const add = await fetch(`${base}/board/api/queues/documents/add`, {
        method: 'POST', headers: { ...basic, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'document', data: { ref: { kind: 'file', path: '/etc/shadow' } } }),
      });
      expect(add.status).toBe(405);
      fs.copyFileSync(path.join(CORPUS, 'oyo.pdf'), path.join(cwd, 'inbox', 'oyo.pdf'));
      await until(() => fs.existsSync(path.join(cwd, 'done', 'oyo.pdf.result.json')), 'inbox file not processed');
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/docsift_documents_total\{queue="documents",result="completed",code=""\} 1/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    expect(child.exitCode, log.slice(-3000)).toBe(0);
    // The private Redis went down with it.
    const probe = spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' });
    expect(probe.stdout.trim()).not.toBe('PONG');
  });
});
