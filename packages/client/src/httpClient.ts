import type { ResultRecord } from './records.js';
import { pollForResult, readInput, type DocsiftClient, type DocumentInput, type DocumentState, type Enqueued, type EnqueueOptions } from './client.js';

export class DocsiftHttpError extends Error {
  override readonly name = 'DocsiftHttpError';
  constructor(readonly status: number, readonly code: string, message: string) {
    super(`HTTP ${status} ${code}: ${message}`);
  }
}

/** The client for back-office code that reaches docsift's HTTP API. */
export class HttpClient implements DocsiftClient {
  private readonly baseUrl: string;
  private readonly token: string | undefined;

  constructor(options: { baseUrl: string; token?: string }) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
  }

  private async request(method: string, url: string, body?: FormData | Record<string, unknown>): Promise<{ status: number; json: any }> {
    const json = body !== undefined && !(body instanceof FormData);
    const res = await fetch(this.baseUrl + url, {
      method,
      headers: { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...(json ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: json ? JSON.stringify(body) : body } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  private fail(res: { status: number; json: any }): never {
    throw new DocsiftHttpError(res.status, res.json?.error?.code ?? 'HTTP_ERROR', res.json?.error?.message ?? 'request failed');
  }

  async enqueue(input: DocumentInput, options: EnqueueOptions = {}): Promise<Enqueued> {
    if (typeof input === 'object' && 'serverPath' in input) {
      // The server reads it under its document roots (POST /v1/documents with a JSON body).
      const res = await this.request('POST', '/v1/documents', {
        path: input.serverPath,
        ...(options.queue ? { queue: options.queue } : {}),
        ...(options.priority ? { priority: options.priority } : {}),
        ...(options.metadata ? { metadata: options.metadata } : {}),
        ...(options.force ? { force: true } : {}),
      });
      return this.enqueued(res);
    }
    const { bytes, filename } = await readInput(input, options);
    const form = new FormData();
    if (options.queue) form.append('queue', options.queue);
    if (options.priority) form.append('priority', String(options.priority));
    if (options.metadata) form.append('metadata', JSON.stringify(options.metadata));
    if (options.force) form.append('force', 'true');
    form.append('file', new Blob([new Uint8Array(bytes)]), filename);
    return this.enqueued(await this.request('POST', '/v1/documents', form));
  }

  private enqueued(res: { status: number; json: any }): Enqueued {
    if (res.status !== 202) this.fail(res);
    const doc = res.json.documents[0];
    return { documentId: doc.documentId, jobId: doc.jobId, queue: doc.queue, status: doc.status };
  }

  async status(documentId: string): Promise<DocumentState | null> {
    const res = await this.request('GET', `/v1/documents/${encodeURIComponent(documentId)}`);
    if (res.status === 404) return null;
    if (res.status !== 200) this.fail(res);
    const { state, stage, attempts, error } = res.json;
    return { documentId, state, stage, attempts, error };
  }

  async result(documentId: string): Promise<ResultRecord | null> {
    const res = await this.request('GET', `/v1/documents/${encodeURIComponent(documentId)}/result`);
    if (res.status === 404 || res.status === 409) return null;
    if (res.status !== 200) this.fail(res);
    return res.json as ResultRecord;
  }

  waitForResult(documentId: string, options?: { timeoutMs?: number; pollMs?: number }): Promise<ResultRecord> {
    return pollForResult(this, documentId, options);
  }

  async close(): Promise<void> {}
}
