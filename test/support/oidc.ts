/**
 * A real OpenID provider (panva/oidc-provider) on 127.0.0.1 for tests. It issues RFC 9068 JWT
 * access tokens by client_credentials, with `aud` = the requested resource indicator and each
 * client's configured roles in a `roles` claim, exactly as an agent would receive them.
 *
 * Its private signing key is handed to the test so it can forge tokens the provider would never
 * issue (expired, wrong audience, alg none, ...) and prove the agent refuses each.
 *
 * With `deviceClients` and `users`, it also runs the device authorization flow (RFC 8628) for
 * public clients, with the provider's own development sign-in and consent pages; `browser`
 * walks those pages with fetch as a person at a browser would (open the verification URI,
 * confirm the code, sign in, consent, or refuse), so a test drives the flow to its end.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export interface OidcTestClient {
  clientId: string;
  clientSecret: string;
  roles: string[];
}

/** An end user who can sign in on the provider's pages (any password), with the roles their tokens carry. */
export interface OidcTestUser {
  accountId: string;
  roles: string[];
}

export interface OidcProviderOptions {
  /** The resource indicator tokens are issued for by default (their `aud`). */
  resource: string;
  clients: OidcTestClient[];
  /** Public clients (no secret) allowed the device flow. */
  deviceClients?: string[];
  /** People who can approve a device code. */
  users?: OidcTestUser[];
  /** How long a device code may wait for approval, in seconds. Default 600. */
  deviceCodeTtlSeconds?: number;
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
  /** A person at a browser: approves (signs in as `accountId`, consents) or refuses a device code. */
  browser: {
    approve(verificationUriComplete: string, accountId: string): Promise<void>;
    refuse(verificationUriComplete: string): Promise<void>;
  };
  close(): Promise<void>;
}

/** The part of oidc-provider's API used here (the package ships no type declarations). */
interface ProviderInstance {
  callback(): http.RequestListener;
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
interface TokenLike {
  clientId?: string;
  accountId?: string;
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
  const rolesByUser = new Map((options.users ?? []).map((user) => [user.accountId, user.roles]));
  const deviceFlow = (options.deviceClients ?? []).length > 0;
  const configuration = {
    clients: [
      ...options.clients.map((client) => ({
        client_id: client.clientId,
        client_secret: client.clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      })),
      ...(options.deviceClients ?? []).map((clientId) => ({
        client_id: clientId,
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'none',
      })),
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: ['test-only-cookie-key'] },
    findAccount: async (_ctx: unknown, accountId: string) =>
      rolesByUser.has(accountId) ? { accountId, claims: async () => ({ sub: accountId }) } : undefined,
    features: {
      // The provider's own sign-in and consent pages: what `browser` walks through.
      devInteractions: { enabled: deviceFlow },
      deviceFlow: { enabled: deviceFlow },
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
      roles:
        token.accountId !== undefined
          ? (rolesByUser.get(token.accountId) ?? [])
          : (rolesByClient.get(token.clientId ?? '') ?? []),
    }),
    ttl: {
      ClientCredentials: options.accessTokenTtlSeconds ?? 600,
      DeviceCode: options.deviceCodeTtlSeconds ?? 600,
      // Set, so the provider does not print a notice for each default it falls back to.
      AccessToken: options.accessTokenTtlSeconds ?? 600,
      IdToken: 600,
      Grant: 600,
      Interaction: 600,
      Session: 600,
    },
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
    browser: {
      approve: (uri, accountId) => walkDevicePages(uri, { accountId }),
      refuse: (uri) => walkDevicePages(uri, { refuse: true }),
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

/**
 * What a person does at the browser with a device code: open the verification URI with the
 * code (the provider answers with a self-submitting form carrying its anti-forgery token),
 * confirm the code (or abort), then sign in and consent on the provider's development pages.
 * Cookies are kept as a browser keeps them; redirects are followed by hand to see each page.
 */
async function walkDevicePages(
  verificationUriComplete: string,
  person: { accountId?: string; refuse?: boolean },
): Promise<void> {
  const cookies = new Map<string, string>();
  const origin = new URL(verificationUriComplete).origin;
  const visit = async (url: string, form?: Record<string, string>): Promise<Response> => {
    const res = await fetch(new URL(url, origin), {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: {
        cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return res;
  };
  const hidden = (html: string, name: string): string => {
    const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
    if (!match?.[1]) throw new Error(`the device page has no ${name} field:\n${html}`);
    return match[1];
  };
  const opened = await visit(verificationUriComplete);
  const page = await opened.text();
  const codeForm = { xsrf: hidden(page, 'xsrf'), user_code: hidden(page, 'user_code') };
  if (person.refuse) {
    const aborted = await visit('/device', { ...codeForm, abort: 'yes' });
    await aborted.text();
    return;
  }
  let res = await visit('/device', { ...codeForm, confirm: 'yes' });
  // Sign-in, then consent: each is a page under /interaction/ reached by redirects.
  for (let step = 0; step < 20; step++) {
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) {
      const body = await res.text();
      if (res.status !== 200 || !body.includes('Sign-in Success')) {
        throw new Error(`the device sign-in did not succeed (HTTP ${res.status}):\n${body}`);
      }
      return;
    }
    await res.arrayBuffer();
    if (location.includes('/interaction/')) {
      const interaction = await (await visit(location)).text();
      const prompt = hidden(interaction, 'prompt');
      res = await visit(
        location,
        prompt === 'login' ? { prompt, login: person.accountId ?? '', password: 'any' } : { prompt },
      );
    } else {
      res = await visit(location);
    }
  }
  throw new Error('the device sign-in did not finish within 20 pages');
}
