/**
 * How writes to a service are kept apart: one in-process async mutex per service name, and
 * the request-id replay that makes a retried write return its first result instead of
 * acting twice.
 *
 * A lock is only as wide as this process. That is enough: one agent owns a node's registry
 * and its containers, and every write to them goes through its handlers.
 */
import { McpError } from '../core/errors.js';
import type { RequestResults } from '../registry/request-results.js';

/** Releases a lock; calling it twice is harmless. */
export type Release = () => void;

export class ServiceLocks {
  /** Per service, the promise that settles when the last holder in its queue releases. */
  readonly #tails = new Map<string, Promise<void>>();
  /** Counts every acquire; per service, the count at its latest one. */
  #acquires = 0;
  readonly #lastAcquire = new Map<string, number>();

  /**
   * From now on: whether a write to a service has been queued since this call. A reader that
   * looked at the node before such a write (the monitor listing containers) may have seen it
   * half done, even if the write has finished by the time the reader checks `isLocked`.
   */
  writesSince(): (service: string) => boolean {
    const mark = this.#acquires;
    return (service) => (this.#lastAcquire.get(service) ?? 0) > mark;
  }

  /** Whether a write to `service` is running or queued. */
  isLocked(service: string): boolean {
    return this.#tails.has(service);
  }

  /**
   * Waits for the service's lock (first come, first served) and returns its release. When
   * `signal` aborts while waiting, the wait ends with ABORTED and the place in the queue is
   * given up without ever holding the lock.
   */
  async acquire(service: string, signal?: AbortSignal): Promise<Release> {
    this.#lastAcquire.set(service, ++this.#acquires);
    const previous = this.#tails.get(service) ?? Promise.resolve();
    let releaseOwn!: () => void;
    const own = new Promise<void>((resolve) => {
      releaseOwn = resolve;
    });
    // Whoever queues next waits for everyone ahead of us and for us.
    const tail = previous.then(() => own);
    this.#tails.set(service, tail);
    void tail.then(() => {
      if (this.#tails.get(service) === tail) this.#tails.delete(service);
    });
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      releaseOwn();
    };
    try {
      await abortable(previous, signal, service);
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * Runs `fn` holding the locks of all `services`. They are taken in name order, so two
   * multi-service writes can never wait on each other in a cycle.
   */
  async withLocks<T>(services: readonly string[], fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const names = [...new Set(services)].sort();
    const releases: Release[] = [];
    try {
      for (const name of names) releases.push(await this.acquire(name, signal));
      return await fn();
    } finally {
      for (const release of releases.reverse()) release();
    }
  }
}

function abortable(wait: Promise<void>, signal: AbortSignal | undefined, service: string): Promise<void> {
  if (!signal) return wait;
  const aborted = () =>
    new McpError(
      'ABORTED',
      `the call was cancelled while waiting for another write to service '${service}' to finish; nothing was done`,
    );
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    wait.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A generated message codec (ts-proto's `X.toJSON`/`X.fromJSON`). */
export interface MessageCodec<T> {
  toJSON(message: T): unknown;
  fromJSON(json: unknown): T;
}

export interface WriteOnceOptions<T> {
  locks: ServiceLocks;
  requestResults: RequestResults;
  /** The services the write changes; their locks are held throughout. */
  services: readonly string[];
  /** The RPC, recorded with the result so that an id reused for another operation is refused. */
  rpc: string;
  /** '' for a call that asked for no replay. */
  requestId: string;
  codec: MessageCodec<T>;
  signal?: AbortSignal;
}

/**
 * Runs a write holding its services' locks, unless a result is already recorded for its
 * request id: then that result comes back with `replayed: true` and nothing is done. The
 * lookup happens inside the lock, so a retry that arrives while the first call is still
 * running waits for it and then replays its result. A write that throws records nothing:
 * its retry acts again.
 */
export async function writeOnce<T extends { replayed: boolean }>(
  options: WriteOnceOptions<T>,
  act: () => Promise<T>,
): Promise<T> {
  const { requestResults, rpc, requestId, codec } = options;
  return options.locks.withLocks(
    options.services,
    async () => {
      const recorded = requestResults.findResult(requestId, rpc);
      if (recorded !== undefined) return { ...codec.fromJSON(recorded), replayed: true };
      const result = await act();
      requestResults.recordResult(requestId, rpc, codec.toJSON(result));
      return result;
    },
    options.signal,
  );
}
