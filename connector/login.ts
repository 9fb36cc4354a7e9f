/**
 * `mcp login`, `mcp logout`, `mcp whoami`: getting a token for the agents into the token file
 * that connector/tokens.ts reads (`[auth] token_file`, one location for every way a token
 * arrives), removing it, and saying whom it names.
 *
 * Flows, chosen by `[login] flow`:
 * - `device`: OAuth 2.0 Device Authorization Grant (RFC 8628) against an OIDC issuer found by
 *   discovery. The user opens the verification URI in any browser and enters the code; this
 *   side polls the token endpoint at the server's interval, slowing down when told to.
 * - `client_credentials`: the client's own token (RFC 6749 §4.4), for unattended use.
 * - `mcias`: user name and password exchanged at MCIAS (`POST /v1/auth/login`) for its opaque
 *   token; prompted for, or read from the config (`username`, `password_file`).
 *
 * Questions and the device step go through the caller's `LoginPrompt` (the CLI's terminal
 * prompts), so this module does no terminal I/O. The token file is written whole, mode 0600,
 * in a 0700 directory. Tokens and passwords are never put in an error message.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeJwt } from 'jose';
import { createIdentityFetch, type IdentityFetch, parseIdentityUrl } from '../core/auth/http.js';
import { readRoles } from '../core/auth/jwt.js';
import { FailedPreconditionError, McpError, UnavailableError } from '../core/errors.js';
import { pause } from '../core/pause.js';
import type { ConnectorConfig, LoginConfig, LoginFlow } from './config.js';
import { accessTokenOf, discoverEndpoints, type OAuthAnswer, postForm, postJson, refusal } from './oauth.js';

/** What login asks of the person at the terminal. */
export interface LoginPrompt {
  /** Asks for one value (`secret`: not echoed). Rejects when the user cancels. */
  ask(question: { message: string; secret?: boolean }): Promise<string>;
  /** Shows the device flow's step: open this URI, enter this code. */
  showDeviceCode(step: DeviceCodeStep): void;
}

export interface DeviceCodeStep {
  verificationUri: string;
  /** The URI with the code in it, when the server gives one (a QR code or a click). */
  verificationUriComplete?: string;
  userCode: string;
  expiresAt: Date;
}

export interface LoginOptions {
  /** Needed for the device flow and for MCIAS without a configured user and password. */
  prompt?: LoginPrompt;
  /** Aborts a device flow that is waiting for the user. */
  signal?: AbortSignal;
  /** Default: a fetch trusting `[login] ca_file`, else the system's CAs. */
  fetch?: IdentityFetch;
}

export interface LoginResult {
  flow: LoginFlow;
  tokenFile: string;
  identity: TokenIdentity;
}

/** Whom a token names, as the agents will read it. */
export interface TokenIdentity {
  /** `jwt`: decoded here without verifying the signature (the agents verify it); `mcias`: as MCIAS answered. */
  kind: 'jwt' | 'mcias' | 'opaque';
  subject?: string;
  roles: string[];
  issuer?: string;
  expiresAt?: Date;
  expired: boolean;
}

/** The device flow ended without a token: the user refused, or the code expired. */
export class DeviceFlowError extends McpError {
  constructor(
    readonly reason: 'access_denied' | 'expired_token',
    message: string,
  ) {
    super('UNAUTHENTICATED', message);
  }
}

/** Signs in with the configured flow and stores the token in the token file. */
export async function login(
  config: Pick<ConnectorConfig, 'login' | 'auth' | 'configFile'>,
  options: LoginOptions = {},
): Promise<LoginResult> {
  const settings = requireLogin(config);
  const fetch = options.fetch ?? createIdentityFetch(settings.caFile);
  let token: string;
  let identity: TokenIdentity | undefined;
  switch (settings.flow) {
    case 'device':
      token = await deviceFlow(settings, fetch, options);
      break;
    case 'client_credentials':
      token = await clientCredentials(settings, fetch);
      break;
    case 'mcias':
      ({ token, identity } = await mciasLogin(settings, fetch, options.prompt));
      break;
  }
  await storeToken(config.auth.tokenFile, token);
  return {
    flow: settings.flow,
    tokenFile: config.auth.tokenFile,
    identity: identity ?? describeToken(token, settings.rolesClaim),
  };
}

/** Removes the stored token. `removed` is false when there was none. */
export async function logout(
  config: Pick<ConnectorConfig, 'auth'>,
): Promise<{ tokenFile: string; removed: boolean }> {
  const { tokenFile } = config.auth;
  const existed = (await readStoredToken(tokenFile)) !== undefined;
  await rm(tokenFile, { force: true });
  return { tokenFile, removed: existed };
}

/**
 * Whom the stored token names. A JWT is decoded, not verified: this is the operator's own
 * token, and the agents verify every call. An MCIAS token is opaque, so MCIAS is asked.
 */
export async function whoami(
  config: Pick<ConnectorConfig, 'login' | 'auth'>,
  options: { fetch?: IdentityFetch; now?: Date } = {},
): Promise<TokenIdentity & { tokenFile: string }> {
  const { tokenFile } = config.auth;
  const token = await readStoredToken(tokenFile);
  if (token === undefined) {
    throw new FailedPreconditionError(`no token stored in ${tokenFile}: run \`mcp login\``);
  }
  const rolesClaim = config.login?.rolesClaim ?? 'roles';
  const now = options.now ?? new Date();
  const decoded = describeToken(token, rolesClaim, now);
  if (decoded.kind === 'opaque' && config.login?.flow === 'mcias') {
    const fetch = options.fetch ?? createIdentityFetch(config.login.caFile);
    return { ...(await mciasValidate(config.login, fetch, token, now)), tokenFile };
  }
  return { ...decoded, tokenFile };
}

/** Decodes a JWT's claims (no signature check); anything else is `opaque`. */
export function describeToken(token: string, rolesClaim = 'roles', now = new Date()): TokenIdentity {
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(token);
  } catch {
    return { kind: 'opaque', roles: [], expired: false };
  }
  const expiresAt = typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : undefined;
  return {
    kind: 'jwt',
    subject: typeof claims.sub === 'string' ? claims.sub : undefined,
    roles: readRoles(claims, rolesClaim) ?? [],
    issuer: typeof claims.iss === 'string' ? claims.iss : undefined,
    expiresAt,
    expired: expiresAt !== undefined && expiresAt.getTime() <= now.getTime(),
  };
}

// --- the flows ------------------------------------------------------------------------------

/** RFC 8628 §3.5: without an interval from the server, poll every 5 s; slow_down adds 5 s. */
const DEFAULT_POLL_SECONDS = 5;
const SLOW_DOWN_SECONDS = 5;

async function deviceFlow(
  settings: LoginConfig,
  fetch: IdentityFetch,
  options: LoginOptions,
): Promise<string> {
  const prompt = requirePrompt(options.prompt, 'the device flow shows a code to enter in a browser');
  const endpoints = await discoverEndpoints(settings.issuer ?? '', fetch, 'check [login] issuer');
  if (endpoints.deviceAuthorization === undefined) {
    throw new FailedPreconditionError(
      `${settings.issuer} offers no device authorization endpoint (device_authorization_endpoint in its discovery document): enable the device flow for client ${settings.clientId} there, or use flow = "client_credentials"`,
    );
  }
  const secret =
    settings.clientSecretFile === undefined ? undefined : await readSecret(settings.clientSecretFile);
  const started = await postForm(
    fetch,
    endpoints.deviceAuthorization,
    withRequestedAccess(new URLSearchParams(), settings),
    settings.clientId ?? '',
    secret,
  );
  if (
    started.status !== 200 ||
    typeof started.body.device_code !== 'string' ||
    typeof started.body.user_code !== 'string' ||
    typeof started.body.verification_uri !== 'string'
  ) {
    throw loginRefusal('device authorization', endpoints.deviceAuthorization, settings, started);
  }
  const deviceCode = started.body.device_code;
  const expiresIn = typeof started.body.expires_in === 'number' ? started.body.expires_in : 600;
  const expiresAt = new Date(Date.now() + expiresIn * 1000);
  let intervalSeconds =
    typeof started.body.interval === 'number' && started.body.interval > 0
      ? started.body.interval
      : DEFAULT_POLL_SECONDS;
  prompt.showDeviceCode({
    verificationUri: started.body.verification_uri,
    verificationUriComplete:
      typeof started.body.verification_uri_complete === 'string'
        ? started.body.verification_uri_complete
        : undefined,
    userCode: started.body.user_code,
    expiresAt,
  });

  for (;;) {
    await pause(intervalSeconds * 1000, options.signal);
    if (options.signal?.aborted) {
      throw new McpError('ABORTED', 'login cancelled before the code was approved: run `mcp login` again');
    }
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: deviceCode,
    });
    const answer = await postForm(fetch, endpoints.token, body, settings.clientId ?? '', secret);
    const token = accessTokenOf(answer);
    if (token !== undefined) return token;
    switch (answer.body.error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        intervalSeconds += SLOW_DOWN_SECONDS;
        continue;
      case 'access_denied':
        throw new DeviceFlowError(
          'access_denied',
          `the sign-in was refused at ${settings.issuer}: run \`mcp login\` again and approve the code`,
        );
      case 'expired_token':
        throw new DeviceFlowError(
          'expired_token',
          `the code expired at ${expiresAt.toISOString()} before it was approved: run \`mcp login\` again and enter the new code within ${Math.round(expiresIn / 60)} minutes`,
        );
      default:
        throw loginRefusal('device token request', endpoints.token, settings, answer);
    }
  }
}

async function clientCredentials(settings: LoginConfig, fetch: IdentityFetch): Promise<string> {
  const endpoints = await discoverEndpoints(settings.issuer ?? '', fetch, 'check [login] issuer');
  const secret = await readSecret(settings.clientSecretFile ?? '');
  const body = withRequestedAccess(new URLSearchParams({ grant_type: 'client_credentials' }), settings);
  const answer = await postForm(fetch, endpoints.token, body, settings.clientId ?? '', secret);
  const token = accessTokenOf(answer);
  if (token !== undefined) return token;
  throw loginRefusal('client credentials', endpoints.token, settings, answer);
}

async function mciasLogin(
  settings: LoginConfig,
  fetch: IdentityFetch,
  prompt: LoginPrompt | undefined,
): Promise<{ token: string; identity: TokenIdentity }> {
  const base = mciasBase(settings);
  const username =
    settings.username ??
    (await requirePrompt(prompt, 'no username in [login]').ask({ message: 'MCIAS user name' }));
  const password =
    settings.passwordFile !== undefined
      ? await readSecret(settings.passwordFile)
      : await requirePrompt(prompt, 'no password_file in [login]').ask({
          message: `Password of ${username} at ${base.host}`,
          secret: true,
        });
  const url = `${base.href}/v1/auth/login`;
  const answer = await postJson(fetch, url, { username, password });
  if (answer.status === 401 || answer.status === 403) {
    throw new McpError(
      'UNAUTHENTICATED',
      `MCIAS at ${base.host} refused the user name or password of ${username}: check them and run \`mcp login\` again`,
    );
  }
  const { token, expires_at: expiresAt } = answer.body;
  if (answer.status !== 200 || typeof token !== 'string' || token === '') {
    throw new UnavailableError(
      `MCIAS at ${url} answered HTTP ${answer.status} without a token: try again later`,
    );
  }
  const expires = typeof expiresAt === 'string' ? new Date(expiresAt) : undefined;
  const validExpiry = expires !== undefined && !Number.isNaN(expires.getTime()) ? expires : undefined;
  // Roles come from MCIAS's validation answer; the login answer names only the token.
  const identity = await mciasValidate(settings, fetch, token, new Date()).catch(
    (): TokenIdentity => ({
      kind: 'mcias',
      subject: username,
      roles: [],
      expiresAt: validExpiry,
      expired: false,
    }),
  );
  return { token, identity };
}

/** MCIAS's own answer about `token` (`POST /v1/token/validate`, as the agents ask it). */
async function mciasValidate(
  settings: LoginConfig,
  fetch: IdentityFetch,
  token: string,
  now: Date,
): Promise<TokenIdentity> {
  const base = mciasBase(settings);
  const answer = await postJson(fetch, `${base.href}/v1/token/validate`, { token });
  if (answer.status !== 200 || typeof answer.body.valid !== 'boolean') {
    throw new UnavailableError(
      `MCIAS at ${base.host} did not answer the token validation (HTTP ${answer.status})`,
    );
  }
  const { valid, sub, roles, expires_at: expiresAt } = answer.body;
  const expires = typeof expiresAt === 'string' ? new Date(expiresAt) : undefined;
  const expiresAtDate = expires && !Number.isNaN(expires.getTime()) ? expires : undefined;
  return {
    kind: 'mcias',
    subject: typeof sub === 'string' ? sub : undefined,
    roles: Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [],
    issuer: `mcias ${base.host}`,
    expiresAt: expiresAtDate,
    expired: !valid || (expiresAtDate !== undefined && expiresAtDate.getTime() <= now.getTime()),
  };
}

// --- helpers --------------------------------------------------------------------------------

function requireLogin(config: Pick<ConnectorConfig, 'login' | 'configFile'>): LoginConfig {
  if (config.login) return config.login;
  throw new FailedPreconditionError(
    `no [login] section in ${config.configFile}: add one (flow = "device", issuer, client_id; or flow = "mcias", server_url), or store a token you have with \`mcp login --token-file\` from stdin`,
  );
}

function requirePrompt(prompt: LoginPrompt | undefined, why: string): LoginPrompt {
  if (prompt) return prompt;
  throw new FailedPreconditionError(`login needs a terminal: ${why}`);
}

/** The server URL without a trailing slash, and its host for messages. */
function mciasBase(settings: LoginConfig): { href: string; host: string } {
  const url = parseIdentityUrl(settings.serverUrl ?? '', 'login.server_url');
  return { href: url.href.replace(/\/$/, ''), host: url.host };
}

function withRequestedAccess(body: URLSearchParams, settings: LoginConfig): URLSearchParams {
  if (settings.scope !== undefined) body.set('scope', settings.scope);
  if (settings.resource !== undefined) body.set('resource', settings.resource);
  if (settings.audience !== undefined) body.set('audience', settings.audience);
  return body;
}

/** A refusal by the issuer, naming the request, its endpoint and what to check in [login]. */
function loginRefusal(what: string, endpoint: string, settings: LoginConfig, answer: OAuthAnswer): McpError {
  return refusal(
    answer,
    'the expected fields',
    (reason) =>
      `${endpoint} refused the ${what} of client ${settings.clientId}: ${reason}; check client_id, the client secret, scope and resource in [login]`,
  );
}

async function readSecret(file: string): Promise<string> {
  try {
    const secret = (await readFile(file, 'utf8')).trim();
    if (secret !== '') return secret;
  } catch (err) {
    throw new FailedPreconditionError(`${file} cannot be read: ${(err as Error).message}`);
  }
  throw new FailedPreconditionError(`${file} is empty: put the secret in it`);
}

async function readStoredToken(file: string): Promise<string | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text === '' ? undefined : text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FailedPreconditionError(`${file}: cannot read the token file: ${(err as Error).message}`);
  }
}

/** Writes the token aside and renames it into place: a reader never sees half a token. */
async function storeToken(file: string, token: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const aside = `${file}.${process.pid}.tmp`;
  await writeFile(aside, `${token}\n`, { mode: 0o600 });
  await rename(aside, file);
}
