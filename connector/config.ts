/**
 * The connector's and the `mcp` CLI's configuration: the nodes and how to reach them over
 * TLS, where the service definitions live, where a bearer token comes from and how `mcp login`
 * gets one, the Streamable HTTP mode's protected resource and trusted issuers, and the one
 * local directory file transfers may touch. TOML (snake_case) in, ConnectorConfig (camelCase) out, `MCP_*`
 * environment overrides for the scalar settings, relative paths taken from the file's directory.
 */
import { resolve } from 'node:path';
import * as z from 'zod';
import {
  checkUniqueIssuers,
  resolveIssuerPaths,
  type TrustedIssuerConfig,
  trustedIssuerSchema,
} from '../core/auth/issuers.js';
import {
  applyEnvOverrides,
  type Env,
  type EnvOverride,
  expandHome,
  hostPortSchema,
  listenAddressSchema,
  nameSchema,
  parseTomlDocument,
  parseWithSchema,
  pathSchema,
  readConfigText,
  requiredString,
  resolveConfigPath,
  secureUrlSchema,
} from '../core/config-env.js';
import { InvalidArgumentError, NotFoundError } from '../core/errors.js';
import { type ConfirmSettings, DEFAULT_CONFIRM_TOOLS, PLANNED_TOOLS } from './confirm.js';

export interface NodeConfig {
  name: string;
  /** `host:port` of the node's agent. */
  address: string;
  /** CA bundle that signed the agent's certificate; undefined uses the system's CAs. */
  caFile?: string;
  /** TLS server name to verify instead of the address's host. */
  serverName?: string;
}

/** OAuth 2.0 client credentials, for a connector or CLI that fetches its own tokens. */
export interface ClientCredentialsConfig {
  /** Exactly one of tokenEndpoint and issuer (OIDC discovery finds the endpoint). */
  tokenEndpoint?: string;
  issuer?: string;
  clientId: string;
  /** Exactly one of clientSecret and clientSecretFile. */
  clientSecret?: string;
  clientSecretFile?: string;
  audience?: string;
  /** RFC 8707 resource indicator. */
  resource?: string;
  scope?: string;
}

/** How `mcp login` gets the token it stores in the token file. */
export type LoginFlow = 'device' | 'client_credentials' | 'mcias';

/** `[login]`: which identity provider `mcp login` signs in to, and how. */
export interface LoginConfig {
  flow: LoginFlow;
  /** OIDC flows: the issuer; its endpoints are found by discovery. */
  issuer?: string;
  /** OIDC flows: the client registered for the CLI. */
  clientId?: string;
  /** OIDC flows: the client secret, required for client_credentials, for a confidential device client. */
  clientSecretFile?: string;
  /** OIDC flows: scopes to request. */
  scope?: string;
  /** OIDC flows: RFC 8707 resource indicator (the fleet's audience). */
  resource?: string;
  audience?: string;
  /** MCIAS: the server's base URL. */
  serverUrl?: string;
  /** MCIAS, unattended: the user and a file holding the password; prompted for otherwise. */
  username?: string;
  passwordFile?: string;
  /** CA bundle for the identity provider's TLS certificate; default the system's. */
  caFile?: string;
  /** The token claim holding roles, as the agents read it (`roles_claim` of their issuer). */
  rolesClaim: string;
}

export interface ConnectorConfig {
  /** Absolute path of the file this was read from. */
  configFile: string;
  servicesDir: string;
  nodes: NodeConfig[];
  auth: {
    clientCredentials?: ClientCredentialsConfig;
    /** A file holding a bearer token (written by `mcp login`). */
    tokenFile: string;
    /** An environment variable holding a bearer token. */
    tokenEnv: string;
  };
  http: {
    listen: string;
    /** The protected resource (the audience tokens must carry); required in HTTP mode. */
    resource?: string;
    /** Origins allowed to call the HTTP endpoint; requests with another Origin are refused. */
    allowedOrigins: string[];
    /** Issuers whose tokens the HTTP endpoint accepts; required in HTTP mode. */
    issuers: TrustedIssuerConfig[];
  };
  /** Absent: `mcp login` cannot sign in (a token can still be stored from stdin). */
  login?: LoginConfig;
  files: {
    /** The only local directory push_file may read from and pull_file may write to. */
    localDir: string;
    inlineMaxBytes: number;
  };
  /** `[confirm]`: which tools' plans a human confirms, and what happens when the client cannot ask. */
  confirm: ConfirmSettings;
}

export const CONNECTOR_ENV_OVERRIDES: readonly EnvOverride[] = [
  { variable: 'MCP_SERVICES_DIR', path: ['services_dir'], kind: 'path' },
  { variable: 'MCP_TOKEN_FILE', path: ['auth', 'token_file'], kind: 'path' },
  { variable: 'MCP_TOKEN_ENV', path: ['auth', 'token_env'], kind: 'string' },
  { variable: 'MCP_HTTP_LISTEN', path: ['http', 'listen'], kind: 'string' },
  { variable: 'MCP_HTTP_RESOURCE', path: ['http', 'resource'], kind: 'string' },
  { variable: 'MCP_LOCAL_DIR', path: ['files', 'local_dir'], kind: 'path' },
  { variable: 'MCP_INLINE_MAX_BYTES', path: ['files', 'inline_max_bytes'], kind: 'integer' },
];

const DEFAULT_CONFIG_FILE = '~/.config/mcp/connector.toml';

/** `$MCP_CONFIG`, else `~/.config/mcp/connector.toml`. */
export function defaultConnectorConfigPath(env: Env = process.env): string {
  return resolve(expandHome(env.MCP_CONFIG || DEFAULT_CONFIG_FILE, env));
}

const nodeSchema = z.strictObject({
  name: nameSchema,
  address: hostPortSchema,
  ca_file: pathSchema.optional(),
  server_name: requiredString('the TLS name on the agent certificate, or leave server_name out').optional(),
});

const clientCredentialsSchema = z
  .strictObject({
    token_endpoint: secureUrlSchema.optional(),
    issuer: secureUrlSchema.optional(),
    client_id: requiredString('the OAuth client id registered at the identity provider'),
    client_secret: requiredString('the client secret, or use client_secret_file').optional(),
    client_secret_file: pathSchema.optional(),
    audience: requiredString('the audience to request, or leave it out').optional(),
    resource: secureUrlSchema.optional(),
    scope: requiredString('space-separated scopes, or leave scope out').optional(),
  })
  .superRefine((credentials, ctx) => {
    if ((credentials.token_endpoint === undefined) === (credentials.issuer === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'give exactly one of token_endpoint, or issuer (its token endpoint is found by OIDC discovery)',
      });
    }
    if ((credentials.client_secret === undefined) === (credentials.client_secret_file === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'give exactly one of client_secret_file (preferred: keeps the secret out of this file) or client_secret',
      });
    }
  });

const loginSchema = z
  .strictObject({
    flow: z.enum(['device', 'client_credentials', 'mcias'], {
      error:
        'flow must be "device" (sign in with a browser), "client_credentials" (a client secret) or "mcias"',
    }),
    issuer: secureUrlSchema.optional(),
    client_id: requiredString('the OAuth client id registered for the mcp CLI').optional(),
    client_secret_file: pathSchema.optional(),
    scope: requiredString('space-separated scopes, or leave scope out').optional(),
    resource: secureUrlSchema.optional(),
    audience: requiredString('the audience to request, or leave it out').optional(),
    server_url: secureUrlSchema.optional(),
    username: requiredString('the MCIAS user name, or leave it out to be asked').optional(),
    password_file: pathSchema.optional(),
    ca_file: pathSchema.optional(),
    roles_claim: z
      .string()
      .regex(/^[^.\s]+(?:\.[^.\s]+)*$/, {
        error: 'expected a claim name or dotted path, e.g. realm_access.roles',
      })
      .default('roles'),
  })
  .superRefine((login, ctx) => {
    const need = (field: keyof typeof login, why: string) => {
      if (login[field] === undefined)
        ctx.addIssue({ code: 'custom', path: [field], message: `required: ${why}` });
    };
    const refuse = (field: keyof typeof login, why: string) => {
      if (login[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: why });
    };
    if (login.flow === 'mcias') {
      need('server_url', 'the MCIAS server mcp login signs in to');
      for (const field of [
        'issuer',
        'client_id',
        'client_secret_file',
        'scope',
        'resource',
        'audience',
      ] as const) {
        refuse(field, `not used with flow = "mcias": remove it, or choose an OIDC flow`);
      }
      if (login.password_file !== undefined) need('username', 'password_file is the password of this user');
      return;
    }
    need('issuer', 'the OIDC issuer (its endpoints are found by discovery)');
    need('client_id', 'the OAuth client id registered for the mcp CLI');
    if (login.flow === 'client_credentials') need('client_secret_file', 'the client secret of client_id');
    for (const field of ['server_url', 'username', 'password_file'] as const) {
      refuse(field, `only used with flow = "mcias": remove it`);
    }
  });

const originSchema = z.string().superRefine((origin, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(origin);
  } catch {
    // reported below
  }
  if (!url || url.origin !== origin) {
    ctx.addIssue({
      code: 'custom',
      message: `"${origin}" is not an origin: expected scheme://host[:port] with no path or trailing slash, e.g. https://claude.ai`,
    });
  }
});

const connectorConfigInput = z
  .strictObject({
    services_dir: pathSchema.default('~/.config/mcp/services'),
    nodes: z.array(nodeSchema).default([]),
    auth: z
      .strictObject({
        client_credentials: clientCredentialsSchema.optional(),
        token_file: pathSchema.default('~/.config/mcp/token'),
        token_env: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
            error: 'expected an environment variable name such as MCP_TOKEN',
          })
          .default('MCP_TOKEN'),
      })
      .prefault({}),
    http: z
      .strictObject({
        listen: listenAddressSchema.default('127.0.0.1:8787'),
        resource: secureUrlSchema.optional(),
        allowed_origins: z.array(originSchema).default([]),
        issuers: z.array(trustedIssuerSchema).default([]),
      })
      .prefault({}),
    login: loginSchema.optional(),
    files: z
      .strictObject({
        local_dir: pathSchema.default('~/mcp-files'),
        inline_max_bytes: z
          .int()
          .min(0)
          .max(16 * 1024 * 1024)
          .default(262_144),
      })
      .prefault({}),
    confirm: z
      .strictObject({
        tools: z
          .array(
            z.enum([...PLANNED_TOOLS], {
              error: `expected one of the tools that plan their writes: ${[...PLANNED_TOOLS].join(', ')}`,
            }),
          )
          .default([...DEFAULT_CONFIRM_TOOLS]),
        when_client_cannot_ask: z.enum(['refuse', 'allow']).default('refuse'),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.nodes.forEach((node, index) => {
      if (seen.has(node.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', index, 'name'],
          message: `node "${node.name}" is listed twice: node names must be unique`,
        });
      }
      seen.add(node.name);
    });
    checkUniqueIssuers(config.http.issuers, ['http', 'issuers'], ctx);
  });

/** Parses and checks the connector config in `text`, read from `file`. Throws InvalidArgumentError. */
export function parseConnectorConfig(text: string, file: string, env: Env = process.env): ConnectorConfig {
  const document = parseTomlDocument(text, file);
  const sources = applyEnvOverrides(document, env, CONNECTOR_ENV_OVERRIDES);
  const input = parseWithSchema(connectorConfigInput, document, file, sources);
  const path = (value: string) => resolveConfigPath(value, file, env);
  const optionalPath = (value: string | undefined) => (value === undefined ? undefined : path(value));
  const credentials = input.auth.client_credentials;
  return {
    configFile: resolve(file),
    servicesDir: path(input.services_dir),
    nodes: input.nodes.map((node) => ({
      name: node.name,
      address: node.address,
      caFile: optionalPath(node.ca_file),
      serverName: node.server_name,
    })),
    auth: {
      clientCredentials: credentials && {
        tokenEndpoint: credentials.token_endpoint,
        issuer: credentials.issuer,
        clientId: credentials.client_id,
        clientSecret: credentials.client_secret,
        clientSecretFile: optionalPath(credentials.client_secret_file),
        audience: credentials.audience,
        resource: credentials.resource,
        scope: credentials.scope,
      },
      tokenFile: path(input.auth.token_file),
      tokenEnv: input.auth.token_env,
    },
    http: {
      listen: input.http.listen,
      resource: input.http.resource,
      allowedOrigins: input.http.allowed_origins,
      issuers: input.http.issuers.map((issuer) => resolveIssuerPaths(issuer, file, env)),
    },
    login: input.login && {
      flow: input.login.flow,
      issuer: input.login.issuer,
      clientId: input.login.client_id,
      clientSecretFile: optionalPath(input.login.client_secret_file),
      scope: input.login.scope,
      resource: input.login.resource,
      audience: input.login.audience,
      serverUrl: input.login.server_url,
      username: input.login.username,
      passwordFile: optionalPath(input.login.password_file),
      caFile: optionalPath(input.login.ca_file),
      rolesClaim: input.login.roles_claim,
    },
    files: { localDir: path(input.files.local_dir), inlineMaxBytes: input.files.inline_max_bytes },
    confirm: {
      tools: new Set(input.confirm.tools),
      whenClientCannotAsk: input.confirm.when_client_cannot_ask,
    },
  };
}

/** Reads and checks the connector config file. */
export async function loadConnectorConfig(file: string, env: Env = process.env): Promise<ConnectorConfig> {
  const text = await readConfigText(file, 'connector config', 'deploy/examples/connector.toml');
  return parseConnectorConfig(text, file, env);
}

/**
 * The HTTP settings, checked for serving: HTTP mode exposes the fleet on a socket, so it
 * needs the resource its callers' tokens are for and at least one issuer to trust.
 */
export function requireHttpSettings(config: ConnectorConfig): ConnectorConfig['http'] & { resource: string } {
  const missing: string[] = [];
  if (config.http.resource === undefined) {
    missing.push(
      `${config.configFile}: http.resource: required in HTTP mode: the URL of this protected resource (the audience callers' tokens must carry)`,
    );
  }
  if (config.http.issuers.length === 0) {
    missing.push(
      `${config.configFile}: http.issuers: required in HTTP mode: add an [[http.issuers]] entry for the identity provider that issues callers' tokens`,
    );
  }
  if (missing.length > 0 || config.http.resource === undefined)
    throw new InvalidArgumentError(missing.join('\n'));
  return { ...config.http, resource: config.http.resource };
}

/** The node named `name`; throws NotFoundError listing the configured ones. */
export function findNode(config: ConnectorConfig, name: string): NodeConfig {
  const node = config.nodes.find((candidate) => candidate.name === name);
  if (node) return node;
  const known = config.nodes.map((candidate) => candidate.name).join(', ') || '(none configured)';
  throw new NotFoundError(`unknown node "${name}": the nodes in ${config.configFile} are ${known}`);
}
