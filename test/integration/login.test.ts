/**
 * `mcp login`, `logout` and `whoami` (connector/login.ts) against a real OpenID provider
 * (oidc-provider: the device flow driven to its end by a fetch-driven "browser" on the
 * provider's own pages, and client credentials) and the MCIAS stand-in (test/support/mcias.ts,
 * a fake: MCIAS cannot run here). The stored token is the one the connector then sends
 * (connector/tokens.ts), and an agent's verifier accepts it with the roles whoami shows.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectorConfig, parseConnectorConfig } from '../../connector/config.js';
import {
  type DeviceCodeStep,
  DeviceFlowError,
  type LoginPrompt,
  login,
  logout,
  whoami,
} from '../../connector/login.js';
import { createBearerSource } from '../../connector/tokens.js';
import { JwtVerifier } from '../../core/auth/jwt.js';
import { jwtIssuer } from '../support/issuers.js';
import { type MciasStandIn, startMciasStandIn } from '../support/mcias.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';

const RESOURCE = 'https://agents.mcp.test';

let idp: TestOidcProvider;
let mcias: MciasStandIn;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mcp-login-'));
  idp = await startOidcProvider({
    resource: RESOURCE,
    clients: [{ clientId: 'mcp-ci', clientSecret: 'ci-secret', roles: ['operator'] }],
    deviceClients: ['mcp-cli'],
    users: [{ accountId: 'alice', roles: ['operator', 'auditor'] }],
  });
  mcias = await startMciasStandIn();
  mcias.addUser('bob', 'correct horse', ['viewer']);
});

afterAll(async () => {
  await idp?.close();
  await mcias?.close();
  rmSync(tmp, { recursive: true, force: true });
});

let configs = 0;
/** A connector config with this `[login]` section and its own token file. */
function configWith(login: string): ConnectorConfig {
  const dir = join(tmp, `config-${++configs}`);
  const file = join(dir, 'connector.toml');
  const text = `[auth]\ntoken_file = "${join(dir, 'state', 'token')}"\n\n[login]\n${login}\n`;
  return parseConnectorConfig(text, file, { HOME: tmp });
}

function deviceConfig(issuer = idp.issuer): ConnectorConfig {
  return configWith(
    [
      `flow = "device"`,
      `issuer = "${issuer}"`,
      `client_id = "mcp-cli"`,
      `scope = "openid mcp"`,
      `resource = "${RESOURCE}"`,
    ].join('\n'),
  );
}

/** The terminal, played by the test: the device step goes to `onDeviceCode`, questions to `answers`. */
function terminal(opts: { onDeviceCode?: (step: DeviceCodeStep) => void; answers?: string[] } = {}) {
  const asked: { message: string; secret?: boolean }[] = [];
  const prompt: LoginPrompt = {
    ask: async (question) => {
      asked.push(question);
      const answer = opts.answers?.shift();
      if (answer === undefined) throw new Error(`unexpected question: ${question.message}`);
      return answer;
    },
    showDeviceCode: (step) => opts.onDeviceCode?.(step),
  };
  return { prompt, asked };
}

describe('mcp login with the device flow', () => {
  it('shows the code, waits for the person to approve it in a browser, and stores the token 0600', async () => {
    const config = deviceConfig();
    let approval: Promise<void> | undefined;
    let shown: DeviceCodeStep | undefined;
    const { prompt } = terminal({
      onDeviceCode: (step) => {
        shown = step;
        approval = idp.browser.approve(step.verificationUriComplete ?? '', 'alice');
      },
    });
    const result = await login(config, { prompt });
    await approval;
    expect(shown?.verificationUri).toBe(`${idp.issuer}/device`);
    expect(shown?.userCode).toMatch(/\S/);
    expect(result.identity).toMatchObject({
      kind: 'jwt',
      subject: 'alice',
      roles: ['operator', 'auditor'],
      issuer: idp.issuer,
      expired: false,
    });
    expect(statSync(config.auth.tokenFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(config.auth.tokenFile, '..')).mode & 0o777).toBe(0o700);

    // The connector sends exactly this token, and an agent trusting the issuer accepts it.
    const stored = readFileSync(config.auth.tokenFile, 'utf8').trim();
    expect(await createBearerSource(config, {}).token()).toBe(stored);
    const verifier = new JwtVerifier(
      jwtIssuer({ issuer: idp.issuer, jwks_uri: idp.jwksUri, audience: RESOURCE }),
    );
    expect(await verifier.verify(stored)).toMatchObject({ subject: 'alice', roles: ['operator', 'auditor'] });

    const me = await whoami(config);
    expect(me).toMatchObject({
      subject: 'alice',
      roles: ['operator', 'auditor'],
      issuer: idp.issuer,
      expired: false,
    });
    expect(me.expiresAt?.getTime()).toBeGreaterThan(Date.now());
    // Decoded, not verified: a clock past the expiry says so.
    const later = await whoami(config, { now: new Date((me.expiresAt?.getTime() ?? 0) + 1000) });
    expect(later.expired).toBe(true);
  });

  it('reports a refusal at the browser as access_denied', async () => {
    const { prompt } = terminal({
      onDeviceCode: (step) => void idp.browser.refuse(step.verificationUriComplete ?? ''),
    });
    const refused = login(deviceConfig(), { prompt });
    await expect(refused).rejects.toBeInstanceOf(DeviceFlowError);
    await expect(refused).rejects.toMatchObject({ reason: 'access_denied', code: 'UNAUTHENTICATED' });
    await expect(refused).rejects.toThrow(/refused .* run `mcp login` again/);
  });

  it('reports a code nobody approved in time as expired', async () => {
    const shortLived = await startOidcProvider({
      resource: RESOURCE,
      clients: [],
      deviceClients: ['mcp-cli'],
      users: [{ accountId: 'alice', roles: ['operator'] }],
      deviceCodeTtlSeconds: 1,
    });
    try {
      const { prompt } = terminal();
      const expired = login(deviceConfig(shortLived.issuer), { prompt });
      await expect(expired).rejects.toMatchObject({ reason: 'expired_token' });
      await expect(expired).rejects.toThrow(/expired .* enter the new code/);
    } finally {
      await shortLived.close();
    }
  });
});

describe('mcp login with client credentials', () => {
  it('stores the client token, and refuses a wrong secret without showing it', async () => {
    const secretFile = join(tmp, 'ci-secret');
    writeFileSync(secretFile, 'ci-secret\n', { mode: 0o600 });
    const config = configWith(
      [
        `flow = "client_credentials"`,
        `issuer = "${idp.issuer}"`,
        `client_id = "mcp-ci"`,
        `client_secret_file = "${secretFile}"`,
        `scope = "mcp"`,
        `resource = "${RESOURCE}"`,
      ].join('\n'),
    );
    const result = await login(config);
    expect(result).toMatchObject({
      flow: 'client_credentials',
      identity: { roles: ['operator'], expired: false },
    });
    expect(statSync(config.auth.tokenFile).mode & 0o777).toBe(0o600);

    writeFileSync(secretFile, 'not-the-secret\n');
    const refused = login(config);
    await expect(refused).rejects.toThrow(/refused the client credentials of client mcp-ci: invalid_client/);
    await expect(refused).rejects.not.toThrow(/not-the-secret/);
  });
});

describe('mcp login with MCIAS', () => {
  const mciasConfig = (extra = '') =>
    configWith(`flow = "mcias"\nserver_url = "${mcias.serverUrl}"\n${extra}`);

  it('asks for the user name and a hidden password, and stores the MCIAS token', async () => {
    const config = mciasConfig();
    const { prompt, asked } = terminal({ answers: ['bob', 'correct horse'] });
    const result = await login(config, { prompt });
    expect(asked.map((q) => q.secret ?? false)).toEqual([false, true]);
    expect(result.identity).toMatchObject({
      kind: 'mcias',
      subject: 'bob',
      roles: ['viewer'],
      expired: false,
    });
    expect(statSync(config.auth.tokenFile).mode & 0o777).toBe(0o600);
    // MCIAS tokens are opaque: whoami asks MCIAS, as the agents do.
    expect(await whoami(config)).toMatchObject({ kind: 'mcias', subject: 'bob', roles: ['viewer'] });
    mcias.revoke(readFileSync(config.auth.tokenFile, 'utf8').trim());
    expect(await whoami(config)).toMatchObject({ expired: true });
  });

  it('signs in unattended from the config, and refuses a wrong password without showing it', async () => {
    const passwordFile = join(tmp, 'bob-password');
    writeFileSync(passwordFile, 'correct horse\n', { mode: 0o600 });
    const config = mciasConfig(`username = "bob"\npassword_file = "${passwordFile}"`);
    expect((await login(config)).identity.subject).toBe('bob');

    writeFileSync(passwordFile, 'wrong staple\n');
    const refused = login(config);
    await expect(refused).rejects.toThrow(/refused the user name or password of bob/);
    await expect(refused).rejects.not.toThrow(/wrong staple/);
  });
});

describe('mcp logout and whoami', () => {
  it('removes the stored token; whoami then says to log in', async () => {
    const config = mciasConfig();
    await login(config, { prompt: terminal({ answers: ['bob', 'correct horse'] }).prompt });
    expect(await logout(config)).toEqual({ tokenFile: config.auth.tokenFile, removed: true });
    await expect(whoami(config)).rejects.toThrow(/no token stored in .*: run `mcp login`/);
    expect(await logout(config)).toEqual({ tokenFile: config.auth.tokenFile, removed: false });
  });

  function mciasConfig() {
    return configWith(`flow = "mcias"\nserver_url = "${mcias.serverUrl}"`);
  }
});

describe('[login] in the connector config', () => {
  it('names what each flow is missing or does not use', () => {
    expect(() => configWith('flow = "device"\nclient_id = "mcp-cli"')).toThrow(/login\.issuer: required/);
    expect(() =>
      configWith(`flow = "client_credentials"\nissuer = "${idp.issuer}"\nclient_id = "x"`),
    ).toThrow(/login\.client_secret_file: required/);
    expect(() =>
      configWith(`flow = "mcias"\nserver_url = "${mcias.serverUrl}"\nissuer = "${idp.issuer}"`),
    ).toThrow(/login\.issuer: not used with flow = "mcias"/);
    expect(() => configWith('flow = "password"')).toThrow(/login\.flow: flow must be "device"/);
    expect(() => configWith('flow = "device"\nissuer = "http://idp.example"\nclient_id = "x"')).toThrow(
      /https/,
    );
  });
});
