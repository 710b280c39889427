/**
 * @docsift/client: enqueue documents and get results from back-office code, over HTTP
 * (HttpClient) or directly over Redis (RedisClient). Both implement DocsiftClient.
 */
export { DocumentFailedError, WaitTimeoutError } from './client.js';
export type { DocsiftClient, DocumentInput, DocumentState, Enqueued, EnqueueOptions } from './client.js';
export type { FailureRecord, MailChild, ResultRecord, TierStep } from './records.js';
export { DocsiftHttpError, HttpClient } from './httpClient.js';
export { RedisClient } from './redisClient.js';
export type { RedisClientOptions } from './redisClient.js';
