import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One root logger per process; every job gets a child with its ids. Long-running services log
 * JSON to stdout; one-shot commands log to stderr so their stdout stays machine-readable.
 */
export function createLogger(options: { level: string; destination: 'stdout' | 'stderr'; name?: string }): Logger {
  return pino(
    {
      level: options.level,
      name: options.name ?? 'docsift',
      // Callers' metadata may hold secrets; tokens and authorization headers never reach a log line.
      redact: { paths: ['*.token', '*.password', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
    },
    pino.destination({ fd: options.destination === 'stdout' ? 1 : 2, sync: options.destination === 'stderr' }),
  );
}
