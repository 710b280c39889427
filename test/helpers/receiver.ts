import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verify } from '../../src/outputs/index.js';

export interface Received {
  documentId: string;
  kind: string;
  deliveryId: string;
  body: Record<string, unknown>;
  signatureValid: boolean;
}

/**
 * A local webhook receiver that verifies signatures. `failFirst` answers 500 that many times
 * before accepting; `status` lets a test switch it to failing and back.
 */
export async function startReceiver(secret: string, options: { failFirst?: number; redirectTo?: string } = {}) {
  const received: Received[] = [];
  let failuresLeft = options.failFirst ?? 0;
  let status = 200;
  let requests = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      requests++;
      if (options.redirectTo) {
        res.writeHead(302, { location: options.redirectTo }).end();
        return;
      }
      if (failuresLeft > 0) {
        failuresLeft--;
        res.writeHead(500).end('try later');
        return;
      }
      if (status !== 200) {
        res.writeHead(status).end();
        return;
      }
      received.push({
        documentId: String(req.headers['x-docsift-document-id']),
        kind: String(req.headers['x-docsift-kind']),
        deliveryId: String(req.headers['x-docsift-delivery']),
        body: JSON.parse(body) as Record<string, unknown>,
        signatureValid: verify(secret, req.headers, body),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    get requests() { return requests; },
    setStatus(s: number) { status = s; },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
