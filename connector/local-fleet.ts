/**
 * The embedded single-node setup: what `mcp-connector` and `mcp` use when no connector
 * config exists. Its files live under one directory (`$MCP_HOME`, else `~/.local/state/mcp`;
 * see local-home.ts). The agent runs as its own long-lived process on loopback, shared by
 * every client of that directory (local-agent.ts), with the same code and the same checks as
 * on a fleet node: TLS, a token on every call (signed here, by the local issuer), RBAC, audit.
 */
import { existsSync, readFileSync } from 'node:fs';
import { importJWK, type JWK, SignJWT } from 'jose';
import { parse as parseToml, stringify } from 'smol-toml';
import { loadAgentConfig } from '../agent/config.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { type ConnectorConfig, parseConnectorConfig } from './config.js';
import { ensureLocalAgent } from './local-agent.js';
import {
  LOCAL_AUDIENCE,
  LOCAL_ISSUER,
  LOCAL_SERVER_NAME,
  LOCAL_SUBJECT,
  localHomeFiles,
} from './local-home.js';
import type { BearerSource } from './tokens.js';

const TOKEN_LIFETIME_S = 600;

export interface LocalFleet {
  readonly home: string;
  readonly config: ConnectorConfig;
  readonly bearer: BearerSource;
  /** Lets go of the agent: it keeps running for the next client (`mcp agent stop` ends it). */
  stop(): Promise<void>;
}

/** Signs short-lived tokens as the local operator; one token is reused until a minute before it expires. */
function localBearer(home: string): BearerSource {
  const jwk = JSON.parse(readFileSync(localHomeFiles(home).issuerKey, 'utf8')) as JWK;
  let cached: { token: string; expiresAt: number } | undefined;
  return {
    description: `the local issuer in ${home}`,
    async token() {
      const now = Date.now();
      if (cached && cached.expiresAt - now > 60_000) return cached.token;
      const key = await importJWK(jwk, 'ES256');
      const token = await new SignJWT({ client_id: 'mcp-connector' })
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'at+jwt' })
        .setIssuer(LOCAL_ISSUER)
        .setAudience(LOCAL_AUDIENCE)
        .setSubject(LOCAL_SUBJECT)
        .setIssuedAt()
        .setExpirationTime(Math.floor(now / 1000) + TOKEN_LIFETIME_S)
        .sign(key);
      cached = { token, expiresAt: now + TOKEN_LIFETIME_S * 1000 };
      return token;
    },
  };
}

/** `[confirm]` of `confirm.toml`, checked with the rest of the generated connector config. */
function readConfirmSettings(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {};
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(
      `${file}: ${(err as Error).message.split('\n')[0]}: fix the file, or delete it for the defaults`,
    );
  }
  return parsed.confirm === undefined ? {} : { confirm: parsed.confirm };
}

export async function startLocalFleet(home: string, log: Logger): Promise<LocalFleet> {
  const agent = await ensureLocalAgent(home);
  const files = localHomeFiles(home);
  // The node's name as the agent knows it (agent.toml may have been edited), for RBAC scopes and definitions.
  const { nodeName } = await loadAgentConfig(files.agentConfig);
  const connectorToml = stringify({
    services_dir: files.services,
    nodes: [
      {
        name: nodeName,
        address: agent.address,
        ca_file: files.ca,
        server_name: LOCAL_SERVER_NAME,
      },
    ],
    files: { local_dir: files.transfer },
    ...readConfirmSettings(files.confirm),
  });
  const config = parseConnectorConfig(
    connectorToml,
    `${files.confirm} (with the local setup's generated nodes)`,
  );
  log.info('local single-node setup', {
    home,
    agent: agent.address,
    agentPid: agent.pid,
    agentStarted: agent.started,
    servicesDir: config.servicesDir,
  });
  return { home, config, bearer: localBearer(home), stop: async () => {} };
}
