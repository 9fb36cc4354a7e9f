/** Polling with a deadline, for tests that wait on something another process does. */

/**
 * Calls `probe` until it returns a value, pausing `intervalMs` between tries; fails naming
 * `what` after `seconds`.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  { seconds = 30, intervalMs = 100 }: { seconds?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
