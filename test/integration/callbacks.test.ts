import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/infra/metrics.js';
import { assertDestination, createDeliveryQueue, deliveryPolicy, deliveryUrlForLogs } from '../../src/outputs/index.js';
import { connectRedis, createRedis, keys as makeKeys } from '../../src/queue/index.js';
import { startDeliveryWorker } from '../../src/worker/deliveryWorker.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { startReceiver } from '../helpers/receiver.js';
import { deleteKeys, REDIS_URL, uniquePrefix, until } from '../helpers/testEnv.js';

/**
 * Callbacks go only where an operator allowed, checked again after DNS; redirects are not
 * followed; callbacks carry their own signature; logs never show a URL's query or credentials.
 * Real HTTP receivers on loopback, a real worker and real Redis.
 */
const CALLBACK_SECRET = 'callback-secret-0123456789abcdef';
let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const doc = (s: string) => Buffer.from(`INVOICE ${s} Widgets Ltd total 10.00 EUR ${Date.now()}`);

describe('where deliveries may go', () => {
  it('decides by name, IP literal and CIDR before anything is sent', () => {
    const policy = deliveryPolicy(['erp.example.com', '*.corp.example', '10.1.0.0/16'], ['https://hooks.example.org/x']);
    expect(assertDestination(policy, 'https://erp.example.com/cb?token=1').hostname).toBe('erp.example.com');
    expect(assertDestination(policy, 'https://a.b.corp.example/cb').hostname).toBe('a.b.corp.example');
    expect(assertDestination(policy, 'https://hooks.example.org/y').hostname).toBe('hooks.example.org');
    expect(assertDestination(policy, 'http://10.1.2.3:8080/cb').hostname).toBe('10.1.2.3');
    for (const [url, why] of [
      ['https://evil.example.net/cb', 'not an allowed callback host'],
      ['https://corp.example.evil.net/cb', 'not an allowed callback host'],
      ['http://127.0.0.1:6379/', 'not an allowed callback host'],
      ['http://169.254.169.254/latest/meta-data', 'not an allowed callback host'],
      ['https://user:pw@erp.example.com/cb', 'credentials'],
      ['ftp://erp.example.com/cb', 'http or https'],
    ]) {
      expect(() => assertDestination(policy, url!), url).toThrow(why);
    }
    // A private address named as a literal needs an IP or CIDR entry, not just a name.
    expect(() => assertDestination(deliveryPolicy(['192.168.1.9'], []), 'http://192.168.1.10/')).toThrow('not an allowed callback host');
    expect(deliveryUrlForLogs('https://user:pw@erp.example.com/cb/7?token=secret#x')).toBe('https://erp.example.com/cb/7?…');
  });

  it('refuses a callback at enqueue: an unlisted host, or callbacks off without their secret', async () => {
    stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_CALLBACK_HOSTS: 'erp.example.com' });
    const s = stack;
    await expect(s.enqueuer.enqueue({ bytes: doc('1'), filename: 'a.txt', source: 'test', callbackUrl: 'https://erp.example.com/cb' }))
      .rejects.toMatchObject({ code: 'CALLBACK_NOT_ALLOWED', message: expect.stringContaining('DOCSIFT_CALLBACK_SECRET') });
    await stack.close();
    stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_CALLBACK_HOSTS: 'erp.example.com', DOCSIFT_CALLBACK_SECRET: CALLBACK_SECRET });
    await expect(stack.enqueuer.enqueue({ bytes: doc('2'), filename: 'a.txt', source: 'test', callbackUrl: 'http://127.0.0.1:6379/' }))
      .rejects.toMatchObject({ code: 'CALLBACK_NOT_ALLOWED' });
    expect(await stack.queue.count()).toBe(0);
  });

  it('delivers to an explicitly allowed address, signed with the callback secret and marked as a callback', async () => {
    const receiver = await startReceiver(CALLBACK_SECRET);
    try {
      stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_CALLBACK_HOSTS: '127.0.0.1', DOCSIFT_CALLBACK_SECRET: CALLBACK_SECRET, DOCSIFT_WEBHOOK_SECRET: 'webhook-secret-0123456789abcdef' });
      const outcome = await stack.enqueuer.enqueue({ bytes: doc('3'), filename: 'c.txt', source: 'test', callbackUrl: `${receiver.url}?token=abc` });
      await stack.waitAll([outcome]);
      await until(() => receiver.received.length === 1);
      expect(receiver.received[0]).toMatchObject({ documentId: outcome.documentId, signatureValid: true, kind: 'callback', deliveryId: expect.stringContaining('-callback-') });
    } finally {
      await receiver.close();
    }
  });

  it('refuses after DNS: an allowed name that resolves to loopback is never connected to', async () => {
    const receiver = await startReceiver(CALLBACK_SECRET);
    try {
      // "localhost" is allowed by name, but no IP or CIDR entry allows 127.0.0.1.
      stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_CALLBACK_HOSTS: 'localhost', DOCSIFT_CALLBACK_SECRET: CALLBACK_SECRET });
      const url = receiver.url.replace('127.0.0.1', 'localhost');
      const outcome = await stack.enqueuer.enqueue({ bytes: doc('4'), filename: 'c.txt', source: 'test', callbackUrl: url });
      const [status] = await stack.waitAll([outcome]);
      expect(status!.state).toBe('done'); // the document is done; only its delivery is refused
      const s = stack;
      await until(async () => (await s.redis.llen(s.keys.deadLetters)) === 1);
      const entry = JSON.parse((await s.redis.lindex(s.keys.deadLetters, 0))!);
      expect(entry.attempts).toBe(1); // refused for good, not retried
      expect(entry.error).toMatch(/resolves to (127\.0\.0\.1|::1), which is not a public address/);
      expect(receiver.requests).toBe(0);
    } finally {
      await receiver.close();
    }
  });

  it('does not follow a redirect', async () => {
    const target = await startReceiver(CALLBACK_SECRET);
    const redirecting = await startReceiver(CALLBACK_SECRET, { redirectTo: target.url });
    try {
      stack = await startStack({ documents: documentsQueue() }, 'documents', { DOCSIFT_CALLBACK_HOSTS: '127.0.0.1', DOCSIFT_CALLBACK_SECRET: CALLBACK_SECRET });
      const outcome = await stack.enqueuer.enqueue({ bytes: doc('5'), filename: 'c.txt', source: 'test', callbackUrl: redirecting.url });
      await stack.waitAll([outcome]);
      const s = stack;
      await until(async () => (await s.redis.llen(s.keys.deadLetters)) === 1);
      const entry = JSON.parse((await s.redis.lindex(s.keys.deadLetters, 0))!);
      expect(entry).toMatchObject({ attempts: 1, error: expect.stringContaining('redirects are not followed') });
      expect(redirecting.requests).toBe(1);
      expect(target.requests).toBe(0);
    } finally {
      await redirecting.close();
      await target.close();
    }
  });

  it('logs a delivery\'s URL without its query or credentials', async () => {
    const receiver = await startReceiver(CALLBACK_SECRET);
    const prefix = uniquePrefix('delivery-log');
    const keys = makeKeys(prefix);
    const redis = createRedis(REDIS_URL, { forWorker: true });
    await connectRedis(redis, REDIS_URL);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } }));
    const deliveries = createDeliveryQueue(redis, keys);
    const worker = startDeliveryWorker({
      redis, keys, logger, metrics: new Metrics(), policy: deliveryPolicy(['127.0.0.1'], []),
      secrets: { webhook: undefined, callback: CALLBACK_SECRET }, deadLetterMax: 10,
    });
    try {
      await redis.set(keys.result('d1'), '{"documentId":"d1"}');
      const url = `${receiver.url}?token=super-secret-token`;
      await deliveries.add('deliver', { documentId: 'd1', queue: 'documents', url, kind: 'callback', timeoutMs: 5000, deliveryId: 'x1' }, { jobId: 'x1' });
      await until(() => receiver.received.length === 1);
      await until(() => lines.some((l) => l.includes('"delivered"')));
      expect(lines.join('\n')).not.toContain('super-secret-token');
      expect(lines.join('\n')).toContain(`${receiver.url}?…`);
    } finally {
      await worker.close();
      await deliveries.obliterate({ force: true });
      await deliveries.close();
      await redis.del(keys.result('d1'));
      redis.disconnect();
      await receiver.close();
    }
  });

  it('keeps the newest DOCSIFT_DEADLETTER_MAX dead letters', async () => {
    const prefix = uniquePrefix('deadletter-cap');
    const keys = makeKeys(prefix);
    const redis = createRedis(REDIS_URL, { forWorker: true });
    await connectRedis(redis, REDIS_URL);
    const deliveries = createDeliveryQueue(redis, keys);
    const worker = startDeliveryWorker({
      redis, keys, logger: pino({ level: 'silent' }), metrics: new Metrics(), policy: deliveryPolicy([], []),
      secrets: { webhook: undefined, callback: CALLBACK_SECRET }, deadLetterMax: 2,
    });
    try {
      for (let i = 0; i < 4; i++) {
        await redis.set(keys.result(`d${i}`), '{}');
        // Refused for good (no host is allowed): dead-lettered after one attempt each.
        await deliveries.add('deliver', { documentId: `d${i}`, queue: 'documents', url: `https://nowhere.example/${i}`, kind: 'callback', timeoutMs: 1000 }, { jobId: `cap-${i}` });
        await until(async () => (await redis.llen(keys.deadLetters)) === Math.min(i + 1, 2));
      }
      await until(async () => JSON.parse((await redis.lindex(keys.deadLetters, -1))!).delivery.documentId === 'd3');
      const kept = (await redis.lrange(keys.deadLetters, 0, -1)).map((e) => JSON.parse(e).delivery.documentId);
      expect(kept).toEqual(['d2', 'd3']);
    } finally {
      await worker.close();
      await deliveries.obliterate({ force: true });
      await deliveries.close();
      await deleteKeys(redis, prefix);
      redis.disconnect();
    }
  });
});
