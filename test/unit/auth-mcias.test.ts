/**
 * MCIAS issuer: validation round trips, the 30 s answer cache (clock injected, no fake timers),
 * revocation, expiry, and failing closed. MCIAS itself cannot run here: test/support/mcias.ts
 * is a labelled stand-in serving its validation endpoint.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Authenticator, callerIssuerOf, createAuthenticator } from '../../core/auth/authenticator.js';
import { UnauthenticatedError } from '../../core/errors.js';
import { mciasIssuer, trustedIssuer } from '../support/issuers.js';
import { type MciasStandIn, startMciasStandIn } from '../support/mcias.js';

let mcias: MciasStandIn;
let now: number;
let auth: Authenticator;

beforeEach(async () => {
  mcias = await startMciasStandIn();
  now = Date.now();
  auth = createAuthenticator([mciasIssuer({ name: 'main', server_url: mcias.serverUrl })], {
    now: () => now,
  });
});

afterEach(async () => {
  await mcias.close();
});

async function refusal(call: Promise<unknown>): Promise<UnauthenticatedError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthenticatedError);
  expect((err as UnauthenticatedError).message).toBe(UnauthenticatedError.MESSAGE);
  return err as UnauthenticatedError;
}

describe('MCIAS issuer', () => {
  it('accepts a valid token: subject and roles from MCIAS, issuer mcias:<name>', async () => {
    const token = mcias.issue('alice', ['operator']);
    expect(await auth.authenticate(`Bearer ${token}`)).toEqual({
      issuer: 'mcias:main',
      subject: 'alice',
      clientId: '',
      roles: ['operator'],
    });
  });

  it('refuses a token MCIAS calls invalid, without the token in the error', async () => {
    const token = 'never-issued-token';
    const err = await refusal(auth.authenticate(`Bearer ${token}`));
    expect(err.detail).toBe('mcias main: token invalid or revoked');
    expect(JSON.stringify(err) + err.stack).not.toContain(token);
  });

  it('answers a second call within 30 s from the cache', async () => {
    const token = mcias.issue('alice', ['viewer']);
    await auth.authenticate(`Bearer ${token}`);
    now += 29_000;
    await auth.authenticate(`Bearer ${token}`);
    expect(mcias.requests).toBe(1);
  });

  it('asks again once 30 s have passed', async () => {
    const token = mcias.issue('alice', ['viewer']);
    await auth.authenticate(`Bearer ${token}`);
    now += 30_001;
    await auth.authenticate(`Bearer ${token}`);
    expect(mcias.requests).toBe(2);
  });

  it('sends one request for concurrent calls with the same token', async () => {
    const token = mcias.issue('alice', ['viewer']);
    await Promise.all([1, 2, 3].map(() => auth.authenticate(`Bearer ${token}`)));
    expect(mcias.requests).toBe(1);
  });

  it('sees a revocation once the cached answer expires, and keeps refusing from the cache', async () => {
    const token = mcias.issue('alice', ['operator']);
    await auth.authenticate(`Bearer ${token}`);
    mcias.revoke(token);
    // The documented window: a revocation takes up to cache_seconds to reach the agent.
    await auth.authenticate(`Bearer ${token}`);
    now += 31_000;
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(/invalid or revoked/);
    expect(mcias.requests).toBe(2);
    // The refusal is cached too.
    await refusal(auth.authenticate(`Bearer ${token}`));
    expect(mcias.requests).toBe(2);
  });

  it('never trusts a cached answer past the token expiry', async () => {
    const token = mcias.issue('alice', ['operator'], { expiresInSeconds: 10 });
    await auth.authenticate(`Bearer ${token}`);
    now += 11_000;
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toBe('mcias main: token expired');
    expect(mcias.requests).toBe(2);
  });

  it('fails closed, uncached, when MCIAS answers an error', async () => {
    const token = mcias.issue('alice', ['operator']);
    mcias.failWith(503);
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toBe(
      'mcias main: validation endpoint answered HTTP 503',
    );
    mcias.failWith(undefined);
    expect((await auth.authenticate(`Bearer ${token}`)).subject).toBe('alice');
  });

  it('fails closed when MCIAS is down', async () => {
    const token = mcias.issue('alice', ['operator']);
    await mcias.close();
    const err = await refusal(auth.authenticate(`Bearer ${token}`));
    expect(err.detail).toMatch(
      /^mcias main: validation request to http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/,
    );
    mcias = await startMciasStandIn(); // for afterEach
  });

  it('caches with a configured lifetime, and 0 turns the cache off', async () => {
    const uncached = createAuthenticator([
      mciasIssuer({ name: 'main', server_url: mcias.serverUrl, cache_seconds: 0 }),
    ]);
    const token = mcias.issue('alice', []);
    await uncached.authenticate(`Bearer ${token}`);
    await uncached.authenticate(`Bearer ${token}`);
    expect(mcias.requests).toBe(2);
  });

  it('with an audience configured, needs the answer to name it', async () => {
    const strict = createAuthenticator([
      mciasIssuer({ name: 'main', server_url: mcias.serverUrl, audience: ['https://agents.mcp.test'] }),
    ]);
    const ours = mcias.issue('alice', ['viewer'], { aud: 'https://agents.mcp.test' });
    expect((await strict.authenticate(`Bearer ${ours}`)).subject).toBe('alice');
    const theirs = mcias.issue('alice', ['viewer'], { aud: 'https://wiki.test' });
    expect((await refusal(strict.authenticate(`Bearer ${theirs}`))).detail).toBe(
      'mcias main: token audience not accepted',
    );
    const unmarked = mcias.issue('alice', ['viewer']);
    expect((await refusal(strict.authenticate(`Bearer ${unmarked}`))).detail).toMatch(
      /audience not accepted/,
    );
  });

  it('maps an MCIAS name to the issuer its callers carry, for bindings', () => {
    expect(callerIssuerOf(mciasIssuer({ name: 'main', server_url: mcias.serverUrl }))).toBe('mcias:main');
    expect(
      callerIssuerOf(trustedIssuer({ issuer: 'https://idp.test', discovery: true, audience: 'a' })),
    ).toBe('https://idp.test');
  });

  it('refuses a weak configuration', () => {
    expect(() => mciasIssuer({ name: 'm', server_url: 'http://mcias.example.test' })).toThrow(
      /must use https/,
    );
    expect(() => mciasIssuer({ name: 'm', server_url: mcias.serverUrl, cache_seconds: 3600 })).toThrow(
      /cache_seconds: .*300/,
    );
    expect(() => mciasIssuer({ name: 'm', server_url: mcias.serverUrl, audience: [] })).toThrow(
      /give at least one audience/,
    );
  });
});
