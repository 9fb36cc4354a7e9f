/**
 * Validates bearer tokens with MCIAS, the identity service of the platform this control plane
 * comes from: `POST {serverUrl}/v1/token/validate` with `{"token": ...}` answers
 * `{valid, sub, roles, expires_at}`.
 *
 * Answers are cached for `cacheSeconds` (never past the token's `expires_at`), keyed by the
 * SHA-256 of the token so the token itself is never kept. Refusals are cached too: a revoked
 * token stays refused without a round trip per call. Anything but a clear answer (network error,
 * timeout, HTTP error, malformed body) refuses the call and is not cached (fail closed).
 */
import { createHash } from 'node:crypto';
import { UnauthenticatedError } from '../errors.js';
import type { Caller, TokenVerifier, VerifierDeps } from './caller.js';
import { createIdentityFetch, IDENTITY_REQUEST_TIMEOUT_MS, type IdentityFetch } from './http.js';
import type { MciasIssuerConfig } from './issuers.js';

/** `Caller.issuer` for callers MCIAS vouches for: `mcias:<name>`. */
export function mciasCallerIssuer(config: Pick<MciasIssuerConfig, 'name'>): string {
  return `mcias:${config.name}`;
}

/** Bounds memory when someone sprays random tokens (refusals are cached as well). */
const MAX_CACHE_ENTRIES = 10_000;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Marks a response body that did not parse as JSON. */
const MALFORMED = Symbol('malformed');

/** A cached answer: the caller for a valid token, or why it was refused. */
type Answer = { caller: Caller; until: number } | { refused: string; until: number };

export class MciasVerifier implements TokenVerifier {
  readonly issuer: string;
  readonly name: string;
  private readonly validateUrl: URL;
  private readonly cacheMs: number;
  private readonly audience: ReadonlySet<string> | undefined;
  private readonly fetch: IdentityFetch;
  private readonly now: () => number;
  private readonly cache = new Map<string, Answer>();
  private readonly inFlight = new Map<string, Promise<Answer>>();

  /**
   * `config` comes from trustedIssuerSchema (core/auth/issuers.ts), which checks the rules
   * (https unless loopback, cache lifetime, audience); here it is only put to use. The CA file
   * is read now, so a wrong path stops the program at start-up.
   */
  constructor(config: MciasIssuerConfig, deps: VerifierDeps = {}) {
    this.name = config.name;
    this.issuer = mciasCallerIssuer(config);
    if (config.audience !== undefined) this.audience = new Set(config.audience);
    this.validateUrl = new URL(`${new URL(config.serverUrl).href.replace(/\/$/, '')}/v1/token/validate`);
    this.cacheMs = config.cacheSeconds * 1000;
    this.fetch = createIdentityFetch(config.caFile);
    this.now = deps.now ?? Date.now;
  }

  /** Validates `token` with MCIAS (or the cache). Throws UnauthenticatedError; the token is never in it. */
  async verify(token: string): Promise<Caller> {
    const key = createHash('sha256').update(token).digest('hex');
    let answer = this.cached(key);
    if (answer === undefined) {
      let pending = this.inFlight.get(key);
      if (pending === undefined) {
        pending = this.ask(token).finally(() => this.inFlight.delete(key));
        this.inFlight.set(key, pending);
      }
      answer = await pending;
      this.remember(key, answer);
    }
    if ('refused' in answer) throw new UnauthenticatedError(`mcias ${this.name}: ${answer.refused}`);
    return { ...answer.caller, roles: [...answer.caller.roles] };
  }

  private cached(key: string): Answer | undefined {
    const answer = this.cache.get(key);
    if (answer === undefined) return undefined;
    if (answer.until > this.now()) return answer;
    this.cache.delete(key);
    return undefined;
  }

  private remember(key: string, answer: Answer): void {
    if (answer.until <= this.now()) return;
    if (this.cache.size >= MAX_CACHE_ENTRIES) {
      const now = this.now();
      for (const [k, a] of this.cache) if (a.until <= now) this.cache.delete(k);
      // Still full: drop the oldest entry (Maps iterate in insertion order).
      const oldest = this.cache.keys().next();
      if (this.cache.size >= MAX_CACHE_ENTRIES && oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(key, answer);
  }

  /** One round trip to MCIAS. Throws (uncached) on anything that is not a clear answer. */
  private async ask(token: string): Promise<Answer> {
    let res: Response;
    let body: unknown;
    try {
      res = await this.fetch(this.validateUrl.href, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ token }),
        signal: AbortSignal.timeout(IDENTITY_REQUEST_TIMEOUT_MS),
      });
      body = res.status === 200 ? await res.json().catch(() => MALFORMED) : undefined;
    } catch (err) {
      const reason =
        err instanceof Error && err.name === 'TimeoutError' ? 'timed out' : (err as Error).message;
      throw new UnauthenticatedError(
        `mcias ${this.name}: validation request to ${this.validateUrl.origin} failed: ${reason}`,
      );
    }
    if (res.status !== 200) {
      throw new UnauthenticatedError(`mcias ${this.name}: validation endpoint answered HTTP ${res.status}`);
    }
    return this.interpret(body);
  }

  private interpret(body: unknown): Answer {
    const now = this.now();
    const malformed = (what: string): UnauthenticatedError =>
      new UnauthenticatedError(`mcias ${this.name}: malformed validation answer: ${what}`);
    if (body === MALFORMED) throw malformed('not JSON');
    if (typeof body !== 'object' || body === null) throw malformed('not a JSON object');
    const { valid, sub, roles, expires_at: expiresAt, aud } = body as Record<string, unknown>;
    if (typeof valid !== 'boolean') throw malformed('`valid` is not a boolean');
    if (!valid) return { refused: 'token invalid or revoked', until: now + this.cacheMs };
    if (typeof sub !== 'string' || sub === '') throw malformed('`sub` is missing');
    if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) {
      throw malformed('`roles` is not an array of strings');
    }
    const expires =
      typeof expiresAt === 'string' && RFC3339.test(expiresAt) ? Date.parse(expiresAt) : Number.NaN;
    if (Number.isNaN(expires)) throw malformed('`expires_at` is not an RFC 3339 time');
    if (expires <= now) return { refused: 'token expired', until: now + this.cacheMs };
    if (this.audience !== undefined && !this.audienceAccepted(aud)) {
      return { refused: 'token audience not accepted', until: Math.min(now + this.cacheMs, expires) };
    }
    const caller: Caller = {
      issuer: this.issuer,
      subject: sub,
      clientId: '',
      roles: [...new Set((roles ?? []) as string[])].filter((r) => r !== ''),
    };
    return { caller, until: Math.min(now + this.cacheMs, expires) };
  }

  private audienceAccepted(aud: unknown): boolean {
    const values = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    return values.some((value) => typeof value === 'string' && this.audience?.has(value) === true);
  }
}
