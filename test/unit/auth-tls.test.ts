/**
 * Identity services behind a private CA: with `caFile` the agent fetches keys, discovery and
 * MCIAS answers over TLS; without it the same server is refused (fail closed). The server here
 * is a minimal https endpoint with a certificate made by openssl for 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthConfigError } from '../../core/auth/errors.js';
import { JwtVerifier } from '../../core/auth/jwt.js';
import { MciasVerifier } from '../../core/auth/mcias.js';
import { UnauthenticatedError } from '../../core/errors.js';
import { jwtIssuer, mciasIssuer } from '../support/issuers.js';

const AUDIENCE = 'https://agents.mcp.test';

let tmp: string;
let caFile: string;
let server: https.Server;
let origin: string;
let token: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mcp-auth-tls-'));
  caFile = join(tmp, 'cert.pem');
  const keyFile = join(tmp, 'key.pem');
  // biome-ignore format: the argv reads better in option/value pairs
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', caFile, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });

  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'tls-1' }] };

  server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    const json = (body: unknown) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/jwks') json(jwks);
    else if (req.url === '/.well-known/openid-configuration')
      json({ issuer: origin, jwks_uri: `${origin}/jwks` });
    else if (req.url === '/v1/token/validate') {
      json({
        valid: true,
        sub: 'bob',
        roles: ['viewer'],
        expires_at: new Date(Date.now() + 3600_000).toISOString(),
      });
    } else if (req.url === '/huge/v1/token/validate') json({ padding: 'x'.repeat(2 * 1024 * 1024) });
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  token = await new SignJWT({ roles: ['viewer'] })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'tls-1' })
    .setIssuer(origin)
    .setAudience(AUDIENCE)
    .setSubject('bob')
    .setExpirationTime('5m')
    .sign(privateKey);
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  rmSync(tmp, { recursive: true, force: true });
});

async function refusal(call: Promise<unknown>): Promise<UnauthenticatedError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthenticatedError);
  return err as UnauthenticatedError;
}

describe('identity services over TLS with a private CA', () => {
  it('fetches a JWKS with ca_file, and refuses the same server without it', async () => {
    const trusted = new JwtVerifier(
      jwtIssuer({
        issuer: origin,
        jwks_uri: `${origin}/jwks`,
        audience: AUDIENCE,
        ca_file: caFile,
      }),
    );
    expect((await trusted.verify(token)).subject).toBe('bob');
    const untrusted = new JwtVerifier(
      jwtIssuer({ issuer: origin, jwks_uri: `${origin}/jwks`, audience: AUDIENCE }),
    );
    expect((await refusal(untrusted.verify(token))).detail).toMatch(/self-signed certificate/);
  });

  it('runs discovery over TLS with ca_file', async () => {
    const verifier = new JwtVerifier(
      jwtIssuer({ issuer: origin, discovery: true, audience: AUDIENCE, ca_file: caFile }),
    );
    expect((await verifier.verify(token)).roles).toEqual(['viewer']);
  });

  it('validates with MCIAS over TLS with ca_file, and fails closed without it', async () => {
    const trusted = new MciasVerifier(mciasIssuer({ name: 'tls', server_url: origin, ca_file: caFile }));
    expect((await trusted.verify('opaque')).subject).toBe('bob');
    const untrusted = new MciasVerifier(mciasIssuer({ name: 'tls', server_url: origin }));
    expect((await refusal(untrusted.verify('opaque'))).detail).toMatch(/failed: self-signed certificate/);
  });

  it('refuses an answer larger than 1 MiB', async () => {
    const verifier = new MciasVerifier(
      mciasIssuer({ name: 'huge', server_url: `${origin}/huge`, ca_file: caFile }),
    );
    expect((await refusal(verifier.verify('opaque'))).detail).toMatch(/larger than 1048576 bytes/);
  });

  it('refuses a missing ca_file at construction', () => {
    expect(
      () => new MciasVerifier(mciasIssuer({ name: 'm', server_url: origin, ca_file: join(tmp, 'nope.pem') })),
    ).toThrow(AuthConfigError);
  });
});
