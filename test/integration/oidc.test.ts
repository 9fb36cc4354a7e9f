/**
 * The agent's authenticator against a real OpenID provider (oidc-provider on 127.0.0.1): tokens it
 * issues by client_credentials are accepted, and every kind of bad token an attacker or a
 * misconfiguration could present is refused with the fixed public message.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Authenticator, createAuthenticator } from '../../core/auth/authenticator.js';
import { JwtVerifier } from '../../core/auth/jwt.js';
import { UnauthenticatedError } from '../../core/errors.js';
import { jwtIssuer } from '../support/issuers.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';

const RESOURCE = 'https://agents.mcp.test';

let idp: TestOidcProvider;
let tmp: string;

beforeAll(async () => {
  idp = await startOidcProvider({
    resource: RESOURCE,
    clients: [
      { clientId: 'deployer', clientSecret: 'deployer-secret-0123456789', roles: ['operator'] },
      { clientId: 'watcher', clientSecret: 'watcher-secret-0123456789', roles: [] },
    ],
  });
  tmp = mkdtempSync(join(tmpdir(), 'mcp-oidc-'));
});

afterAll(async () => {
  await idp?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The provider's public key as PEM (SPKI). */
function publicKeyPem(): string {
  return createPublicKey({ key: idp.publicJwk as JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
}

/** Resolves to the refusal, failing the test if the call was accepted or failed otherwise. */
async function refusal(call: Promise<unknown>): Promise<UnauthenticatedError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthenticatedError);
  const refused = err as UnauthenticatedError;
  expect(refused.message).toBe(UnauthenticatedError.MESSAGE);
  expect(refused.code).toBe('UNAUTHENTICATED');
  return refused;
}

describe('jwks_uri issuer', () => {
  let auth: Authenticator;
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(() => {
    auth = createAuthenticator([
      jwtIssuer({ issuer: idp.issuer, jwks_uri: idp.jwksUri, audience: RESOURCE }),
    ]);
  });

  /** A token signed with the provider's own key, with claims the provider would never issue. */
  async function forge(claims: JWTPayload, header: { kid?: string; alg?: string } = {}): Promise<string> {
    const key = await importJWK(idp.signingKey, 'RS256');
    return new SignJWT({ roles: ['admin'], ...claims })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'test-key-1', ...header })
      .sign(key);
  }
  const valid = { iss: '', sub: 'forger', aud: RESOURCE, iat: 0, exp: 0 };
  const claims = (overrides: JWTPayload): JWTPayload => ({
    ...valid,
    iss: idp.issuer,
    iat: now(),
    exp: now() + 300,
    ...overrides,
  });

  it('accepts a client_credentials token: subject, client id and roles come from it', async () => {
    const token = await idp.token('deployer');
    const caller = await auth.authenticate(`Bearer ${token}`);
    expect(caller).toEqual({
      issuer: idp.issuer,
      subject: 'deployer',
      clientId: 'deployer',
      roles: ['operator'],
    });
  });

  it('accepts the scheme in any case, and a token without roles', async () => {
    const token = await idp.token('watcher');
    const caller = await auth.authenticate(`bearer ${token}`);
    expect(caller).toEqual({ issuer: idp.issuer, subject: 'watcher', clientId: 'watcher', roles: [] });
  });

  it('accepts a forged-shape token only when everything checks out (control for the cases below)', async () => {
    const caller = await auth.authenticate(`Bearer ${await forge(claims({}))}`);
    expect(caller.subject).toBe('forger');
  });

  it('refuses a call without an authorization header', async () => {
    expect((await refusal(auth.authenticate(undefined))).detail).toMatch(/no authorization header/);
  });

  it('refuses another scheme', async () => {
    const err = await refusal(auth.authenticate('Basic ZGVwbG95ZXI6c2VjcmV0'));
    expect(err.detail).toMatch(/scheme is not Bearer/);
  });

  it('refuses a malformed token', async () => {
    expect((await refusal(auth.authenticate('Bearer abc.def.ghi'))).detail).toMatch(/malformed/);
    expect((await refusal(auth.authenticate('Bearer  two-spaces'))).detail).toMatch(/malformed bearer token/);
    expect((await refusal(auth.authenticate('Bearer a b'))).detail).toMatch(/malformed bearer token/);
  });

  it('refuses an expired token (beyond the 60 s tolerance)', async () => {
    const token = await forge(claims({ iat: now() - 900, exp: now() - 120 }));
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(/jwt: token expired/);
  });

  it('refuses a token that is not valid yet', async () => {
    const token = await forge(claims({ nbf: now() + 600 }));
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(/not yet valid/);
  });

  it('refuses a real token issued for another audience', async () => {
    const token = await idp.token('deployer', { resource: 'https://someone-else.test' });
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(/jwt: audience mismatch/);
  });

  it('refuses a token from an issuer nobody trusts, naming that issuer for the log', async () => {
    const token = await forge(claims({ iss: 'https://evil.example' }));
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toBe(
      'jwt: issuer "https://evil.example" is not trusted',
    );
  });

  it('refuses a token whose key id is not in the key set', async () => {
    const token = await forge(claims({}), { kid: 'rotated-away' });
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(
      /no key in the key set matches/,
    );
  });

  it("refuses alg 'none'", async () => {
    const token = new UnsecuredJWT({ ...claims({}) }).encode();
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(/algorithm not allowed/);
  });

  it('refuses HS256 signed with the public key as the secret (key confusion)', async () => {
    const token = await new SignJWT({ ...claims({}) })
      .setProtectedHeader({ alg: 'HS256', kid: 'test-key-1' })
      .sign(new TextEncoder().encode(publicKeyPem()));
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(/algorithm not allowed/);
  });

  it('refuses a signature from a key that is not in the set', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT({ ...claims({}) })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'test-key-1' })
      .sign(privateKey);
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(
      /signature verification failed/,
    );
  });

  it('refuses a token without exp', async () => {
    const { exp: _exp, ...withoutExp } = claims({});
    const token = await forge(withoutExp);
    expect((await refusal(auth.authenticate(`Bearer ${token}`))).detail).toMatch(
      /required claim 'exp' is missing/,
    );
  });

  it('never puts the token in the error', async () => {
    const token = await idp.token('deployer', { resource: 'https://someone-else.test' });
    const err = await refusal(auth.authenticate(`Bearer ${token}`));
    const [, payload, signature] = token.split('.');
    for (const text of [err.message, err.detail, String(err.stack), JSON.stringify(err)]) {
      expect(text).not.toContain(payload);
      expect(text).not.toContain(signature);
    }
    expect(err.cause).toBeUndefined();
  });
});

describe('key sources', () => {
  it('discovery: finds the JWKS through the provider metadata', async () => {
    const auth = createAuthenticator([
      jwtIssuer({ issuer: idp.issuer, discovery: true, audience: RESOURCE }),
    ]);
    const caller = await auth.authenticate(`Bearer ${await idp.token('deployer')}`);
    expect(caller.roles).toEqual(['operator']);
  });

  it('discovery: refuses when the metadata names another issuer', async () => {
    // Configured with a trailing slash: discovery fetches the same document, whose issuer differs.
    const verifier = new JwtVerifier(
      jwtIssuer({ issuer: `${idp.issuer}/`, discovery: true, audience: RESOURCE }),
    );
    const err = await refusal(verifier.verify(await idp.token('deployer')));
    expect(err.detail).toMatch(/discovery failed: document issuer .* is not the configured issuer/);
  });

  it('typ: requires at+jwt when configured', async () => {
    const verifier = new JwtVerifier(
      jwtIssuer({
        issuer: idp.issuer,
        jwks_uri: idp.jwksUri,
        audience: RESOURCE,
        typ: 'at+jwt',
      }),
    );
    expect((await verifier.verify(await idp.token('deployer'))).subject).toBe('deployer');
    const key = await importJWK(idp.signingKey, 'RS256');
    const plain = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'test-key-1', typ: 'JWT' })
      .setIssuer(idp.issuer)
      .setAudience(RESOURCE)
      .setSubject('x')
      .setExpirationTime('5m')
      .sign(key);
    expect((await refusal(verifier.verify(plain))).detail).toMatch(/typ header mismatch/);
  });

  it('key_file: a single public JWK', async () => {
    const file = join(tmp, 'key.jwk.json');
    writeFileSync(file, JSON.stringify(idp.publicJwk));
    const verifier = new JwtVerifier(jwtIssuer({ issuer: idp.issuer, key_file: file, audience: RESOURCE }));
    expect((await verifier.verify(await idp.token('deployer'))).subject).toBe('deployer');
  });

  it('key_file: a JWKS, picking the key by kid', async () => {
    const other = await generateKeyPair('ES256', { extractable: true });
    const otherJwk = { ...(await exportJWK(other.publicKey)), kid: 'other' };
    const file = join(tmp, 'keys.jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [otherJwk, idp.publicJwk] }));
    const verifier = new JwtVerifier(jwtIssuer({ issuer: idp.issuer, key_file: file, audience: RESOURCE }));
    expect((await verifier.verify(await idp.token('deployer'))).subject).toBe('deployer');
  });

  it('key_file: a PEM public key and a PEM certificate', async () => {
    const keyPem = join(tmp, 'signing.key.pem');
    const privatePem = createPrivateKey({ key: idp.signingKey as JsonWebKey, format: 'jwk' }).export({
      type: 'pkcs8',
      format: 'pem',
    });
    writeFileSync(keyPem, privatePem, { mode: 0o600 });
    const publicPem = join(tmp, 'public.pem');
    writeFileSync(publicPem, publicKeyPem());
    const certPem = join(tmp, 'cert.pem');
    execFileSync('openssl', [
      'req',
      '-x509',
      '-key',
      keyPem,
      '-subj',
      '/CN=test-idp',
      '-days',
      '1',
      '-out',
      certPem,
    ]);

    const token = await idp.token('deployer');
    for (const keyFile of [publicPem, certPem]) {
      const verifier = new JwtVerifier(
        jwtIssuer({ issuer: idp.issuer, key_file: keyFile, audience: RESOURCE }),
      );
      expect((await verifier.verify(token)).subject).toBe('deployer');
    }
  });

  it('jwks_uri: refuses when the key set cannot be fetched (fail closed)', async () => {
    const verifier = new JwtVerifier(
      jwtIssuer({
        issuer: idp.issuer,
        jwks_uri: 'http://127.0.0.1:9/jwks',
        audience: RESOURCE,
      }),
    );
    expect((await refusal(verifier.verify(await idp.token('deployer')))).detail).toMatch(/ECONNREFUSED/);
  });
});
