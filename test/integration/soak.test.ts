import { describe, expect, it } from 'vitest';
import { soak } from '../soak/soak.js';

describe('soak (small): documents through 3 worker processes while workers are killed', () => {
  it('every document ends done, none lost, no duplicate records', async () => {
    const result = await soak({ docs: 60, workers: 3, killEveryMs: 2500, timeoutS: 240, log: () => undefined });
    expect(result.kills).toBeGreaterThan(0);
    expect(result).toMatchObject({ in: 60, out: 60, failed: 0, lost: 0, duplicates: 0 });
  }, 300_000);
});
