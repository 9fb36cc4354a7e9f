/**
 * Where the bearer token sent to the agents comes from, in this order:
 *
 * 1. Streamable HTTP mode: the caller's own token, already validated for the fleet's audience
 *    (request-scoped; the connector and the agents are one protected resource, see
 *    docs/security.md).
 * 2. OAuth 2.0 client credentials from the config: fetched from the token endpoint (configured,
 *    or found by OIDC discovery), cached until 60 s before it expires, one fetch at a time.
 * 3. A token file (written by `mcp login`).
 * 4. An environment variable (`MCP_TOKEN` unless configured otherwise).
 *
 * Tokens are never logged, and never put in an error message.
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import { createIdentityFetch, type IdentityFetch } from '../core/auth/http.js';
import type { Env } from '../core/config-env.js';
import { McpError } from '../core/errors.js';
import type { ClientCredentialsConfig, ConnectorConfig } from './config.js';
import { accessTokenOf, discoverEndpoints, postForm, refusal } from './oauth.js';

/** Renew a cached token this long before it expires. */
const REFRESH_MARGIN_MS = 60_000;

export interface BearerSource {
  /** What the token is, for logs and messages ("client credentials of mcp-connector at https://idp/token"). */
  readonly description: string;
  /** A token to send now. */
  token(): Promise<string>;
}

/** No token available: the message says every way to provide one. */
export class NoTokenError extends McpError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

/**
 * The connector's own token source (stdio mode, and HTTP mode without caller authentication).
 * The token file and the variable are looked at on every call, so a `mcp login` takes effect
 * without a restart; the file is read again only when it changed (see TokenFile).
 */
export function createBearerSource(
  config: Pick<ConnectorConfig, 'auth' | 'configFile'>,
  env: Env = process.env,
  fetch: IdentityFetch = createIdentityFetch(),
): BearerSource {
  const { auth } = config;
  if (auth.clientCredentials) return new ClientCredentialsSource(auth.clientCredentials, fetch);
  const file = new TokenFile(auth.tokenFile);
  const expiry = new ExpiryOf();
  return {
    description: `token file ${auth.tokenFile}, else $${auth.tokenEnv}`,
    async token() {
      const fromFile = file.read();
      if (fromFile !== undefined) return checkNotExpired(fromFile, `the token in ${auth.tokenFile}`, expiry);
      const fromEnv = env[auth.tokenEnv]?.trim();
      if (fromEnv) return checkNotExpired(fromEnv, `the token in $${auth.tokenEnv}`, expiry);
      throw new NoTokenError(
        `no bearer token for the agents: run \`mcp login\` (writes ${auth.tokenFile}), set $${auth.tokenEnv}, or configure [auth.client_credentials] in ${config.configFile}`,
      );
    },
  };
}

/**
 * The token file, read again only when it changed: one stat per call instead of an open, a
 * read and a close. `mcp login` renames a new file into place (a new inode); an edit in place
 * changes the size or the change time.
 */
const RACY_CHANGE_MS = 1_000;

class TokenFile {
  private seen: { signature: string; token: string | undefined } | undefined;

  constructor(private readonly path: string) {}

  read(): string | undefined {
    let signature: string;
    try {
      const st = statSync(this.path, { bigint: true, throwIfNoEntry: false });
      if (st === undefined) {
        this.seen = undefined;
        return undefined;
      }
      signature = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      // The kernel stamps times at a coarse tick: a file changed within the last second may
      // carry the stamp of an earlier change, so it is read again ("racily clean", as git says).
      const settled = Date.now() - Number(st.ctimeMs) > RACY_CHANGE_MS;
      if (settled && this.seen?.signature === signature) return this.seen.token;
      const text = readFileSync(this.path, 'utf8').trim();
      this.seen = { signature, token: text === '' ? undefined : text };
      return this.seen.token;
    } catch (err) {
      this.seen = undefined;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new McpError(
        'FAILED_PRECONDITION',
        `${this.path}: cannot read the token file: ${(err as Error).message}`,
      );
    }
  }
}

/** The `exp` of the last token looked at, so one token is decoded once, not at every call. */
class ExpiryOf {
  private last: { token: string; exp: number | undefined } | undefined;

  /** The token's `exp` (seconds), or undefined for an opaque token or one without `exp`. */
  get(token: string): number | undefined {
    if (this.last?.token !== token) {
      let exp: number | undefined;
      try {
        exp = decodeJwt(token).exp;
      } catch {
        exp = undefined; // opaque tokens (MCIAS) are the agents' to judge
      }
      this.last = { token, exp };
    }
    return this.last.exp;
  }
}

/** A JWT whose `exp` has passed is refused here, with a message, instead of by every agent. */
function checkNotExpired(token: string, what: string, expiry: ExpiryOf): string {
  const exp = expiry.get(token);
  if (exp !== undefined && exp * 1000 <= Date.now()) {
    throw new NoTokenError(
      `${what} expired at ${new Date(exp * 1000).toISOString()}: run \`mcp login\` again or replace it`,
    );
  }
  return token;
}

interface CachedToken {
  value: string;
  /** Renew after this time (ms since the epoch). */
  renewAt: number;
}

/** OAuth 2.0 client credentials grant (RFC 6749 §4.4), with RFC 8707 `resource` and `audience`. */
export class ClientCredentialsSource implements BearerSource {
  readonly description: string;
  private cached: CachedToken | undefined;
  private inFlight: Promise<string> | undefined;
  private endpoint: string | undefined;

  constructor(
    private readonly credentials: ClientCredentialsConfig,
    private readonly fetch: IdentityFetch,
    private readonly now: () => number = Date.now,
  ) {
    this.endpoint = credentials.tokenEndpoint;
    this.description = `client credentials of ${credentials.clientId} at ${credentials.tokenEndpoint ?? credentials.issuer}`;
  }

  async token(): Promise<string> {
    if (this.cached && this.now() < this.cached.renewAt) return this.cached.value;
    // Single flight: concurrent calls (a fan-out) share one request to the token endpoint.
    this.inFlight ??= this.fetchToken().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async fetchToken(): Promise<string> {
    const endpoint = await this.tokenEndpoint();
    const c = this.credentials;
    const secret = await this.clientSecret();
    const body = new URLSearchParams({ grant_type: 'client_credentials' });
    if (c.resource !== undefined) body.set('resource', c.resource);
    if (c.audience !== undefined) body.set('audience', c.audience);
    if (c.scope !== undefined) body.set('scope', c.scope);
    const started = this.now();
    const answer = await postForm(this.fetch, endpoint, body, c.clientId, secret);
    const token = accessTokenOf(answer);
    if (token === undefined) {
      throw refusal(
        answer,
        'an access_token',
        (reason) =>
          `token endpoint ${endpoint} refused the client credentials of ${c.clientId}: ${reason}; check client_id, the client secret and resource/audience in the [auth.client_credentials] config`,
      );
    }
    const expiresIn = typeof answer.body.expires_in === 'number' ? answer.body.expires_in : 300;
    this.cached = { value: token, renewAt: started + Math.max(0, expiresIn * 1000 - REFRESH_MARGIN_MS) };
    return token;
  }

  private async clientSecret(): Promise<string> {
    const c = this.credentials;
    if (c.clientSecret !== undefined) return c.clientSecret;
    const file = c.clientSecretFile ?? '';
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new McpError(
        'FAILED_PRECONDITION',
        `client_secret_file ${file} cannot be read: ${(err as Error).message}`,
      );
    }
  }

  /** The configured endpoint, or the one the issuer's OIDC discovery document names (kept once found). */
  private async tokenEndpoint(): Promise<string> {
    this.endpoint ??= (
      await discoverEndpoints(
        this.credentials.issuer ?? '',
        this.fetch,
        'check issuer, or configure token_endpoint, in [auth.client_credentials]',
      )
    ).token;
    return this.endpoint;
  }
}
