/**
 * The cache of verified tokens: how long a verified token is taken on trust, how many are
 * kept, and that a refusal is never remembered. The cache's own rules are tested with a
 * clock the test moves; the refusal rule through the authenticator, against a real key set
 * served over loopback HTTP.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../core/auth/authenticator.js';
import type { Caller } from '../../core/auth/caller.js';
import {
  MAX_VERIFIED_TOKENS,
  VERIFIED_TOKEN_TTL_MS,
  VerifiedTokenCache,
} from '../../core/auth/token-cache.js';
import { UnauthenticatedError } from '../../core/errors.js';
import { jwtIssuer } from '../support/issuers.js';

const alice: Caller = {
  issuer: 'https://idp.example.test',
  subject: 'alice',
  clientId: 'cli',
  roles: ['viewer'],
};

function clock(start = 1_800_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('VerifiedTokenCache', () => {
  it('keys entries by the SHA-256 of the token, never the token', () => {
    const key = VerifiedTokenCache.keyOf('eyJhbGciOiJFUzI1NiJ9.payload.signature');
    expect(key).not.toContain('payload');
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
  });

  it("answers until the token's exp when that comes before the fixed bound", () => {
    const time = clock();
    const cache = new VerifiedTokenCache({ now: time.now });
    cache.remember('k', alice, time.now() + 5_000);
    time.advance(4_999);
    expect(cache.get('k')).toEqual(alice);
    time.advance(1);
    expect(cache.get('k')).toBeUndefined();
  });

  it('answers no longer than the fixed bound, however far away exp is', () => {
    const time = clock();
    const cache = new VerifiedTokenCache({ now: time.now });
    cache.remember('k', alice, time.now() + 3_600_000);
    time.advance(VERIFIED_TOKEN_TTL_MS - 1);
    expect(cache.get('k')).toEqual(alice);
    time.advance(1);
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not keep a token that has already expired', () => {
    const time = clock();
    const cache = new VerifiedTokenCache({ now: time.now });
    cache.remember('k', alice, time.now());
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('hands out copies, so a caller changed by one call does not leak into the next', () => {
    const cache = new VerifiedTokenCache();
    cache.remember('k', alice, Date.now() + 60_000);
    const first = cache.get('k');
    first?.roles.push('admin');
    expect(cache.get('k')?.roles).toEqual(['viewer']);
  });

  it('holds at most maxEntries, dropping expired entries first, else the oldest', () => {
    const time = clock();
    const cache = new VerifiedTokenCache({ now: time.now, maxEntries: 3 });
    cache.remember('short', alice, time.now() + 1_000);
    cache.remember('a', alice, time.now() + 60_000);
    cache.remember('b', alice, time.now() + 60_000);
    time.advance(1_000);
    cache.remember('c', alice, time.now() + 60_000);
    expect(cache.size).toBe(3);
    expect(cache.get('a')).toBeDefined(); // the expired one made room
    cache.remember('d', alice, time.now() + 60_000);
    expect(cache.size).toBe(3);
    expect(cache.get('a')).toBeUndefined(); // none expired: the oldest went
    expect(cache.get('d')).toBeDefined();
  });

  it('is bounded by default', () => {
    const cache = new VerifiedTokenCache();
    for (let i = 0; i < MAX_VERIFIED_TOKENS + 50; i++) cache.remember(`k${i}`, alice, Date.now() + 60_000);
    expect(cache.size).toBe(MAX_VERIFIED_TOKENS);
  });
});

describe('the authenticator caches successes only', () => {
  const ISSUER = 'http://127.0.0.1/idp';
  const AUDIENCE = 'https://agents.mcp.test';
  let server: Server;
  let jwksUri: string;
  /** What the key set endpoint answers now: the key set, or an HTTP error status. */
  let answer: { keys: JWK[] } | number = 503;
  /** The issuer's key set, served once a test switches the endpoint on. */
  let keySet: { keys: JWK[] };
  let sign: (claims?: Record<string, unknown>) => Promise<string>;

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    sign = (claims = {}) =>
      new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setExpirationTime('5m')
        .sign(privateKey);
    server = createServer((_req, res) => {
      if (typeof answer === 'number') {
        res.writeHead(answer).end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    keySet = { keys: [jwk] };
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('checks a token refused for a key set problem again on the next call, and accepts it then', async () => {
    const auth = createAuthenticator([
      jwtIssuer({ issuer: ISSUER, jwks_uri: jwksUri, audience: AUDIENCE, algorithms: ['ES256'] }),
    ]);
    const token = await sign();
    const refused = await auth.authenticate(`Bearer ${token}`).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(UnauthenticatedError);
    answer = keySet;
    expect(await auth.authenticate(`Bearer ${token}`)).toMatchObject({ issuer: ISSUER, subject: 'alice' });
  });

  it('refuses a token with a forged signature even after the genuine token was accepted', async () => {
    answer = keySet;
    const auth = createAuthenticator([
      jwtIssuer({ issuer: ISSUER, jwks_uri: jwksUri, audience: AUDIENCE, algorithms: ['ES256'] }),
    ]);
    const token = await sign();
    expect((await auth.authenticate(`Bearer ${token}`)).subject).toBe('alice');
    const [header, payload] = token.split('.');
    const forged = `${header}.${payload}.${'A'.repeat(86)}`;
    for (let i = 0; i < 2; i++) {
      await expect(auth.authenticate(`Bearer ${forged}`)).rejects.toBeInstanceOf(UnauthenticatedError);
    }
  });
});
