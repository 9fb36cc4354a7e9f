/**
 * A real OpenID provider (panva/oidc-provider) on 127.0.0.1 for tests. It issues RFC 9068 JWT
 * access tokens by client_credentials, with `aud` = the requested resource indicator and each
 * client's configured roles in a `roles` claim, exactly as an agent would receive them.
 *
 * Its private signing key is handed to the test so it can forge tokens the provider would never
 * issue (expired, wrong audience, alg none, ...) and prove the agent refuses each.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export interface OidcTestClient {
  clientId: string;
  clientSecret: string;
  roles: string[];
}

export interface OidcProviderOptions {
  /** The resource indicator tokens are issued for by default (their `aud`). */
  resource: string;
  clients: OidcTestClient[];
  /** Access token lifetime in seconds. Default 600. */
  accessTokenTtlSeconds?: number;
}

export interface TestOidcProvider {
  issuer: string;
  jwksUri: string;
  tokenEndpoint: string;
  /** A fresh access token by client_credentials, for `resource` (default: the provider's resource). */
  token(clientId: string, options?: { resource?: string }): Promise<string>;
  /** The provider's private signing key (RS256, with `kid`), for forging tokens. */
  signingKey: JWK;
  /** The public half, as published in the JWKS. */
  publicJwk: JWK;
  close(): Promise<void>;
}

/** The part of oidc-provider's API used here (the package ships no type declarations). */
interface ProviderInstance {
  callback(): http.RequestListener;
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
interface TokenLike {
  clientId?: string;
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<TestOidcProvider> {
  // A computed specifier: a literal one makes tsc demand declarations oidc-provider does not ship.
  const specifier = 'oidc-provider';
  const { default: Provider } = await quietly(
    async () => (await import(specifier)) as { default: ProviderConstructor },
  );

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey: JWK = { ...(await exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };
  const { d, p, q, dp, dq, qi, ...publicJwk } = signingKey;

  let listener: http.RequestListener = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = http.createServer((req, res) => listener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const rolesByClient = new Map(options.clients.map((client) => [client.clientId, client.roles]));
  const configuration = {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [signingKey] },
    cookies: { keys: ['test-only-cookie-key'] },
    findAccount: async () => undefined,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => options.resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resourceIndicator: string) => ({
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: options.accessTokenTtlSeconds ?? 600,
          jwt: { sign: { alg: 'RS256' } },
          scope: 'mcp',
        }),
      },
    },
    extraTokenClaims: async (_ctx: unknown, token: TokenLike) => ({
      roles: rolesByClient.get(token.clientId ?? '') ?? [],
    }),
    ttl: { ClientCredentials: options.accessTokenTtlSeconds ?? 600 },
  };

  const provider = await quietly(async () => new Provider(issuer, configuration));
  listener = provider.callback();

  const tokenEndpoint = `${issuer}/token`;
  const secrets = new Map(options.clients.map((client) => [client.clientId, client.clientSecret]));

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    tokenEndpoint,
    signingKey,
    publicJwk,
    async token(clientId, tokenOptions = {}) {
      const secret = secrets.get(clientId);
      if (secret === undefined) throw new Error(`unknown test client ${clientId}`);
      const res = await fetch(tokenEndpoint, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          resource: tokenOptions.resource ?? options.resource,
          scope: 'mcp',
        }),
      });
      const body = (await res.json()) as {
        access_token?: string;
        error?: string;
        error_description?: string;
      };
      if (res.status !== 200 || typeof body.access_token !== 'string') {
        throw new Error(
          `token request failed: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`,
        );
      }
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/**
 * oidc-provider prints notices when loaded (Node 20 is "unsupported": it works, and the agent
 * does not run it) and at construction (development defaults); they are noise in test output.
 */
async function quietly<T>(build: () => Promise<T>): Promise<T> {
  const { warn, info } = console;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).includes('oidc-provider')) warn(...args);
  };
  console.info = (...args: unknown[]) => {
    if (!String(args[0]).includes('oidc-provider')) info(...args);
  };
  try {
    return await build();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}
