/**
 * Tokens whose verification succeeded a moment ago, so a caller making many calls with one
 * token pays for the signature check once rather than on every call.
 *
 * Keyed by the SHA-256 of the token: the token itself is never kept. An entry lives until the
 * token's `exp` and never longer than VERIFIED_TOKEN_TTL_MS, so a token stops being accepted
 * from the cache no later than it would stop verifying. Only successes are remembered: a
 * refusal (bad signature, unknown key, key set unreachable) is checked again on the next call,
 * and a signing key removed from the issuer's key set stops verifying new tokens at once, while
 * tokens already verified with it stay accepted for at most the bound.
 */
import { createHash } from 'node:crypto';
import type { Caller } from './caller.js';

/** How long a verified token is taken on trust before its signature is checked again. */
export const VERIFIED_TOKEN_TTL_MS = 30_000;

/** Bounds memory when many distinct tokens arrive (each a valid one: refusals are not kept). */
export const MAX_VERIFIED_TOKENS = 10_000;

interface Verified {
  readonly caller: Caller;
  readonly until: number;
}

export interface VerifiedTokenCacheOptions {
  /** Current time in milliseconds since the epoch. Default Date.now. */
  now?: () => number;
  ttlMs?: number;
  maxEntries?: number;
}

export class VerifiedTokenCache {
  private readonly entries = new Map<string, Verified>();
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(options: VerifiedTokenCacheOptions = {}) {
    this.now = options.now ?? Date.now;
    this.ttlMs = options.ttlMs ?? VERIFIED_TOKEN_TTL_MS;
    this.maxEntries = options.maxEntries ?? MAX_VERIFIED_TOKENS;
  }

  /** The key a token is remembered by: its SHA-256, never the token. */
  static keyOf(token: string): string {
    return createHash('sha256').update(token).digest('base64');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The caller of a token verified earlier and still within its bound, as a fresh copy. */
  get(key: string): Caller | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    const { caller } = entry;
    return {
      issuer: caller.issuer,
      subject: caller.subject,
      clientId: caller.clientId,
      roles: [...caller.roles],
    };
  }

  /** Remembers a token that just verified, until `expiresAt` (ms) or the fixed bound, whichever is first. */
  remember(key: string, caller: Caller, expiresAt: number): void {
    const now = this.now();
    const until = Math.min(expiresAt, now + this.ttlMs);
    if (until <= now) return;
    if (this.entries.size >= this.maxEntries && !this.entries.has(key)) this.makeRoom(now);
    this.entries.set(key, { caller: { ...caller, roles: [...caller.roles] }, until });
  }

  /** Drops expired entries; when none were, the oldest (Maps iterate in insertion order). */
  private makeRoom(now: number): void {
    for (const [key, entry] of this.entries) if (entry.until <= now) this.entries.delete(key);
    if (this.entries.size < this.maxEntries) return;
    const oldest = this.entries.keys().next();
    if (oldest.done !== true) this.entries.delete(oldest.value);
  }
}
