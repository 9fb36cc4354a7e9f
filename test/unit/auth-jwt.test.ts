/**
 * JWT issuer configuration and claim mapping, with tokens signed by jose and keys from a file
 * (no network). The real-provider behaviour is in test/integration/oidc.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../core/auth/authenticator.js';
import { AuthConfigError } from '../../core/auth/errors.js';
import { JwtVerifier, readRoles } from '../../core/auth/jwt.js';
import { UnauthenticatedError } from '../../core/errors.js';
import { jwtIssuer } from '../support/issuers.js';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'https://agents.mcp.test';

let tmp: string;
let keyFile: string;
let sign: (claims: JWTPayload) => Promise<string>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mcp-auth-jwt-'));
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  keyFile = join(tmp, 'idp.jwk.json');
  writeFileSync(keyFile, JSON.stringify({ ...(await exportJWK(publicKey)), kid: 'k1' }));
  // `exp` is five minutes ahead unless the claims give one.
  sign = (claims) =>
    new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setExpirationTime(claims.exp ?? '5m')
      .sign(privateKey);
  writeFileSync(join(tmp, 'private.pem'), await exportPKCS8(privateKey));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The refusal a call ended in; fails the test if it was accepted or failed otherwise. */
async function refusal(call: Promise<unknown>): Promise<UnauthenticatedError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthenticatedError);
  expect((err as UnauthenticatedError).message).toBe(UnauthenticatedError.MESSAGE);
  return err as UnauthenticatedError;
}

/** The issuer entry of these tests as a config file holds it; `overrides` as written there. */
const entry = (overrides: Record<string, unknown> = {}) => ({
  issuer: ISSUER,
  key_file: keyFile,
  audience: AUDIENCE,
  ...overrides,
});
const issuer = (overrides: Record<string, unknown> = {}) => jwtIssuer(entry(overrides));

describe('issuer configuration: strict unless loosened on purpose', () => {
  it.each([
    ['none', /"none" means unsigned tokens/],
    ['HS256', /"HS256" is a shared-secret algorithm/],
    ['hs512', /"hs512" is a shared-secret algorithm/],
    ['RS1', /unsupported algorithm "RS1"/],
  ])('refuses algorithm %s', (alg, message) => {
    expect(() => issuer({ algorithms: ['RS256', alg] })).toThrow(message);
  });

  it('refuses a missing or empty audience', () => {
    expect(() => jwtIssuer({ issuer: ISSUER, key_file: keyFile })).toThrow(/audience: required/);
    expect(() => issuer({ audience: '' })).toThrow(/audience/);
    expect(() => issuer({ audience: [] })).toThrow(/give at least one audience/);
  });

  it('needs exactly one key source', () => {
    expect(() => jwtIssuer({ issuer: ISSUER, audience: AUDIENCE })).toThrow(/exactly one of/);
    expect(() => issuer({ jwks_uri: `${ISSUER}/jwks` })).toThrow(/exactly one of/);
    expect(() => issuer({ discovery: true })).toThrow(/exactly one of/);
  });

  it('refuses a ca_file beside a key_file', () => {
    expect(() => issuer({ ca_file: join(tmp, 'ca.pem') })).toThrow(/ca_file has no use with key_file/);
  });

  it('refuses plain http for keys except on loopback', () => {
    const remote = { issuer: ISSUER, audience: AUDIENCE, jwks_uri: 'http://idp.example.test/jwks' };
    expect(() => jwtIssuer(remote)).toThrow(/must use https/);
    expect(() =>
      jwtIssuer({ issuer: 'http://idp.example.test', audience: AUDIENCE, discovery: true }),
    ).toThrow(/must use https/);
    expect(
      () => new JwtVerifier(jwtIssuer({ ...remote, jwks_uri: 'http://127.0.0.1:8080/jwks' })),
    ).not.toThrow();
  });

  it('refuses a key file holding a private key', () => {
    expect(() => new JwtVerifier(issuer({ key_file: join(tmp, 'private.pem') }))).toThrow(/private key/);
  });

  it('refuses an unreadable key file at construction, naming it', () => {
    const missing = issuer({ key_file: join(tmp, 'missing.json') });
    expect(() => new JwtVerifier(missing)).toThrow(AuthConfigError);
    expect(() => new JwtVerifier(missing)).toThrow(/missing\.json/);
  });

  it('caps the clock tolerance', () => {
    expect(() => issuer({ clock_tolerance_seconds: 3600 })).toThrow(/clock_tolerance_seconds: .*300/);
  });

  it('refuses to start with no issuer, or the same issuer twice', () => {
    expect(() => createAuthenticator([])).toThrow(/no trusted issuer/);
    expect(() => createAuthenticator([issuer(), issuer()])).toThrow(/configured twice/);
  });
});

describe('claims to caller', () => {
  it('takes the subject from the configured claim and the client from client_id, else azp', async () => {
    const token = await sign({ azp: 'cli', client_id: 'svc' });
    expect(await new JwtVerifier(issuer()).verify(token)).toMatchObject({
      subject: 'alice',
      clientId: 'svc',
    });
    const onlyAzp = await sign({ azp: 'cli' });
    expect(await new JwtVerifier(issuer({ subject_claim: 'azp' })).verify(onlyAzp)).toMatchObject({
      subject: 'cli',
      clientId: 'cli',
    });
    expect((await new JwtVerifier(issuer()).verify(await sign({}))).clientId).toBe('');
  });

  it('refuses a token without the subject claim', async () => {
    const err = await refusal(new JwtVerifier(issuer({ subject_claim: 'client_id' })).verify(await sign({})));
    expect(err.detail).toMatch(/subject claim 'client_id' is missing/);
  });

  it('reads roles from a nested path, a scope-style string, or a claim named like a URL', async () => {
    const nested = await sign({ realm_access: { roles: ['operator', 'viewer'] } });
    expect(
      (await new JwtVerifier(issuer({ roles_claim: 'realm_access.roles' })).verify(nested)).roles,
    ).toEqual(['operator', 'viewer']);
    const scoped = await sign({ scope: 'viewer  auditor' });
    expect((await new JwtVerifier(issuer({ roles_claim: 'scope' })).verify(scoped)).roles).toEqual([
      'viewer',
      'auditor',
    ]);
    const url = await sign({ 'https://example.test/roles': ['admin'] });
    expect(
      (await new JwtVerifier(issuer({ roles_claim: 'https://example.test/roles' })).verify(url)).roles,
    ).toEqual(['admin']);
  });

  it('reads no roles when the claim is absent, and refuses a claim of the wrong type', async () => {
    expect(readRoles({}, 'roles')).toEqual([]);
    expect(readRoles({ roles: 'a b a' }, 'roles')).toEqual(['a', 'b']);
    expect(readRoles({ roles: [1] }, 'roles')).toBeUndefined();
    expect(readRoles({ roles: { admin: true } }, 'roles')).toBeUndefined();
    // Only own properties: a path cannot reach into prototypes.
    expect(readRoles({}, 'constructor.name')).toEqual([]);
    const err = await refusal(new JwtVerifier(issuer()).verify(await sign({ roles: 42 })));
    expect(err.detail).toMatch(/roles claim 'roles' is neither a string nor an array of strings/);
  });
});

describe('issued-at and lifetime', () => {
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  const TEN_YEARS = 10 * 365 * 24 * 3600;

  it('refuses a token issued ten years in the future, with the fixed message and a detail', async () => {
    const iat = nowSeconds() + TEN_YEARS;
    const token = await sign({ iat, exp: iat + 300 });
    const err = await refusal(new JwtVerifier(issuer()).verify(token));
    expect(err.detail).toMatch(/^jwt: token issued in the future \(iat \d+ s ahead, tolerance 60 s\)/);
  });

  it('accepts an iat within the clock tolerance and refuses one just beyond it', async () => {
    const verifier = new JwtVerifier(issuer({ clock_tolerance_seconds: 30 }));
    const within = nowSeconds() + 20;
    expect((await verifier.verify(await sign({ iat: within, exp: within + 300 }))).subject).toBe('alice');
    const beyond = nowSeconds() + 90;
    const err = await refusal(verifier.verify(await sign({ iat: beyond, exp: beyond + 300 })));
    expect(err.detail).toMatch(/issued in the future/);
  });

  it('accepts a token without iat when no lifetime cap is set', async () => {
    expect((await new JwtVerifier(issuer()).verify(await sign({}))).subject).toBe('alice');
  });

  it('refuses a token whose exp - iat exceeds max_token_lifetime_seconds, and accepts one within', async () => {
    const verifier = new JwtVerifier(issuer({ max_token_lifetime_seconds: 600 }));
    const iat = nowSeconds() - 10;
    expect((await verifier.verify(await sign({ iat, exp: iat + 600 }))).subject).toBe('alice');
    const long = await sign({ iat, exp: iat + 601 });
    expect((await refusal(verifier.verify(long))).detail).toMatch(
      /token lifetime 601 s exceeds max_token_lifetime_seconds 600/,
    );
  });

  it('refuses a token without iat when max_token_lifetime_seconds is set', async () => {
    const verifier = new JwtVerifier(issuer({ max_token_lifetime_seconds: 600 }));
    const err = await refusal(verifier.verify(await sign({})));
    expect(err.detail).toMatch(/required claim 'iat' is missing \(max_token_lifetime_seconds is set/);
  });

  it('refuses a non-numeric iat', async () => {
    const err = await refusal(new JwtVerifier(issuer()).verify(await sign({ iat: 'yesterday' as never })));
    expect(err.detail).toMatch(/'iat'/);
  });

  it('bounds max_token_lifetime_seconds in the config', () => {
    expect(() => issuer({ max_token_lifetime_seconds: 0 })).toThrow(
      /max_token_lifetime_seconds: give at least 60/,
    );
    expect(() => issuer({ max_token_lifetime_seconds: 1.5 })).toThrow(/max_token_lifetime_seconds/);
    expect(() => issuer({ max_token_lifetime_seconds: 10 ** 7 })).toThrow(/at most 604800/);
    expect(issuer({ max_token_lifetime_seconds: 3600 }).maxTokenLifetimeSeconds).toBe(3600);
    expect(issuer().maxTokenLifetimeSeconds).toBeUndefined();
  });
});

describe('routing by issuer', () => {
  it('sends a JWT to the issuer it names and refuses an opaque token when no MCIAS is configured', async () => {
    const auth = createAuthenticator([issuer()]);
    expect((await auth.authenticate(`Bearer ${await sign({})}`)).issuer).toBe(ISSUER);
    const err = await refusal(auth.authenticate('Bearer opaque-token-value'));
    expect(err.detail).toBe('token is not a JWT and no MCIAS issuer is configured');
  });

  it('refuses a JWT without iss, and an oversized header', async () => {
    const auth = createAuthenticator([issuer()]);
    const noIss = await sign({ iss: undefined });
    expect((await refusal(auth.authenticate(`Bearer ${noIss}`))).detail).toBe('jwt: token has no iss claim');
    const huge = `Bearer ${'a'.repeat(20_000)}`;
    expect((await refusal(auth.authenticate(huge))).detail).toMatch(/longer than/);
  });
});
