/**
 * Where the connector's bearer token comes from: client credentials from a real OpenID
 * provider (oidc-provider on 127.0.0.1, discovery included), the token file, the variable.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorConfig } from '../../connector/config.js';
import { ClientCredentialsSource, createBearerSource } from '../../connector/tokens.js';
import { createIdentityFetch, type IdentityFetch } from '../../core/auth/http.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';

const RESOURCE = 'https://fleet.mcp.test';
let idp: TestOidcProvider;
let dir: string;

beforeAll(async () => {
  idp = await startOidcProvider({
    resource: RESOURCE,
    clients: [{ clientId: 'connector', clientSecret: 'connector-secret-0123456789', roles: ['operator'] }],
  });
  dir = mkdtempSync(join(tmpdir(), 'mcp-tokens-'));
});

afterAll(async () => {
  await idp?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The identity fetch, counting token requests. */
function countingFetch(): { fetch: IdentityFetch; tokenRequests: () => number } {
  const real = createIdentityFetch();
  let count = 0;
  return {
    fetch: (url, init) => {
      if (init.method === 'POST') count++;
      return real(url, init);
    },
    tokenRequests: () => count,
  };
}

function config(auth: Partial<ConnectorConfig['auth']>): Pick<ConnectorConfig, 'auth' | 'configFile'> {
  return {
    configFile: join(dir, 'connector.toml'),
    auth: { tokenFile: join(dir, 'token'), tokenEnv: 'MCP_TOKEN', ...auth },
  };
}

describe('client credentials', () => {
  it('finds the token endpoint by discovery, asks for the resource, and reuses the token until near expiry', async () => {
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, 'connector-secret-0123456789\n');
    const counting = countingFetch();
    let now = Date.now();
    const source = new ClientCredentialsSource(
      { issuer: idp.issuer, clientId: 'connector', clientSecretFile: secretFile, resource: RESOURCE },
      counting.fetch,
      () => now,
    );
    // A fan-out asks for the token from every node's call at once: one request serves them all.
    const tokens = await Promise.all([source.token(), source.token(), source.token()]);
    expect(new Set(tokens).size).toBe(1);
    expect(counting.tokenRequests()).toBe(1);
    const claims = decodeJwt(tokens[0] ?? '');
    expect(claims.aud).toBe(RESOURCE);
    expect(claims.roles).toEqual(['operator']);

    now += 60_000;
    expect(await source.token()).toBe(tokens[0]);
    expect(counting.tokenRequests()).toBe(1);
    // 600 s tokens are renewed 60 s before they expire.
    now += 500_000;
    await source.token();
    expect(counting.tokenRequests()).toBe(2);
  });

  it('says which client the provider refused and what to check, without the secret', async () => {
    const source = new ClientCredentialsSource(
      {
        tokenEndpoint: idp.tokenEndpoint,
        clientId: 'connector',
        clientSecret: 'wrong-secret',
        resource: RESOURCE,
      },
      createIdentityFetch(),
    );
    const err = (await source.token().catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toContain(
      `token endpoint ${idp.tokenEndpoint} refused the client credentials of connector`,
    );
    expect(err.message).toContain('invalid_client');
    expect(err.message).not.toContain('wrong-secret');
  });
});

describe('token file and variable', () => {
  it('prefers the token file to the variable, and reads it at every call', async () => {
    const source = createBearerSource(config({}), { MCP_TOKEN: 'from-env' });
    expect(await source.token()).toBe('from-env');
    writeFileSync(join(dir, 'token'), 'from-file\n');
    expect(await source.token()).toBe('from-file');
    rmSync(join(dir, 'token'));
  });

  it('sees the token file replaced or rewritten in place between calls, even at the same size', async () => {
    const source = createBearerSource(config({}), {});
    const file = join(dir, 'token');
    writeFileSync(file, 'token-one\n');
    expect(await source.token()).toBe('token-one');
    writeFileSync(file, 'token-two\n');
    expect(await source.token()).toBe('token-two');
    writeFileSync(`${file}.new`, 'token-three\n');
    renameSync(`${file}.new`, file);
    expect(await source.token()).toBe('token-three');
    rmSync(file);
    await expect(source.token()).rejects.toThrow(/no bearer token/);
  });

  it('refuses an expired JWT with what to do', async () => {
    const key = new TextEncoder().encode('k'.repeat(32));
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(1_000_000)
      .sign(key);
    const source = createBearerSource(config({}), { MCP_TOKEN: expired });
    await expect(source.token()).rejects.toThrow(/the token in \$MCP_TOKEN expired at 1970-01-12.*mcp login/);
  });

  it('uses client credentials over both when they are configured', async () => {
    const source = createBearerSource(
      config({
        clientCredentials: {
          tokenEndpoint: idp.tokenEndpoint,
          clientId: 'connector',
          clientSecret: 'connector-secret-0123456789',
        },
      }),
      { MCP_TOKEN: 'from-env' },
    );
    expect(decodeJwt(await source.token()).aud).toBe(RESOURCE);
  });
});
