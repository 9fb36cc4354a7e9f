/**
 * A service's components' logs are read a few at a time: never more at once than the bound,
 * every one read, the answers in the components' order.
 */
import { describe, expect, it } from 'vitest';
import { LOG_READS_AT_ONCE, mapBounded } from '../../agent/handlers/logs.js';

describe('mapBounded', () => {
  it('runs at most `limit` tasks at once and keeps the order of the items', async () => {
    let running = 0;
    let most = 0;
    const items = Array.from({ length: 11 }, (_, i) => i);
    const results = await mapBounded(items, LOG_READS_AT_ONCE, async (i) => {
      running++;
      most = Math.max(most, running);
      // Later items finish first: the order of the answers is the items', not the finishing order.
      await new Promise((resolve) => setTimeout(resolve, (11 - i) * 2));
      running--;
      return i * 10;
    });
    expect(results).toEqual(items.map((i) => i * 10));
    expect(most).toBe(LOG_READS_AT_ONCE);
  });

  it('answers an empty list, and fails as the first task that fails', async () => {
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
    await expect(
      mapBounded([1, 2, 3], 2, async (i) => {
        if (i === 2) throw new Error('no container');
        return i;
      }),
    ).rejects.toThrow('no container');
  });
});
