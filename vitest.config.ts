import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run two at a time; llama.cpp in each uses one thread.
    maxWorkers: 2,
    env: { DOCSIFT_THREADS: '1', DOCSIFT_LOG_LEVEL: 'silent' },
  },
});
