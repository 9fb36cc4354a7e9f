/**
 * Waits `ms`, or less when `signal` aborts first: resolves either way, so a polling loop ends
 * its wait at once when its caller goes away (node:timers/promises rejects instead).
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
