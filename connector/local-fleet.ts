/**
 * The embedded single-node setup: what `mcp-connector` and `mcp` use when no connector
 * config exists. Its files live under one directory (`$MCP_HOME`, else `~/.local/state/mcp`;
 * see local-home.ts). The agent runs as its own long-lived process on loopback, shared by
 * every client of that directory (local-agent.ts), with the same code and the same checks as
 * on a fleet node: TLS, a token on every call (signed here, by the local issuer), RBAC, audit.
 */
import { createPrivateKey, type JsonWebKey, sign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseToml, stringify } from 'smol-toml';
import { InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { type ConnectorConfig, type NodeConfig, parseConnectorConfig } from './config.js';
import { ensureLocalAgent } from './local-agent.js';
import {
  LOCAL_AUDIENCE,
  LOCAL_ISSUER,
  LOCAL_SERVER_NAME,
  LOCAL_SUBJECT,
  localHomeFiles,
  prepareLocalDirectories,
} from './local-home.js';
import type { BearerSource } from './tokens.js';

const TOKEN_LIFETIME_S = 600;

export interface LocalFleet {
  readonly home: string;
  /**
   * The connector config of the setup, known without its agent: the services and transfer
   * directories and `[confirm]`. Its one node is `node()`.
   */
  readonly config: ConnectorConfig;
  readonly bearer: BearerSource;
  /**
   * The setup's node, its agent found or started first (creating the setup's files on the
   * first run): called on the first tool call, so `initialize` and `tools/list` wait for none of it.
   */
  node(): Promise<NodeConfig>;
  /** Lets go of the agent: it keeps running for the next client (`mcp agent stop` ends it). */
  stop(): Promise<void>;
}

/**
 * Signs short-lived tokens as the local operator; one token is reused until a minute before it
 * expires. A compact JWS made with node:crypto (ES256, the signature as r || s): the agent
 * verifies it with jose like any other issuer's, and the CLI's start loads no JOSE library.
 */
function localBearer(home: string): BearerSource {
  let cached: { token: string; expiresAt: number } | undefined;
  return {
    description: `the local issuer in ${home}`,
    async token() {
      const now = Date.now();
      if (cached && cached.expiresAt - now > 60_000) return cached.token;
      // Read when first needed: the first tool call creates the key (prepareLocalHome).
      const jwk = JSON.parse(readFileSync(localHomeFiles(home).issuerKey, 'utf8')) as JsonWebKey & {
        kid?: string;
      };
      const issuedAt = Math.floor(now / 1000);
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const signingInput = `${part({ alg: 'ES256', kid: jwk.kid, typ: 'at+jwt' })}.${part({
        client_id: 'mcp-connector',
        iss: LOCAL_ISSUER,
        aud: LOCAL_AUDIENCE,
        sub: LOCAL_SUBJECT,
        iat: issuedAt,
        exp: issuedAt + TOKEN_LIFETIME_S,
      })}`;
      const signature = sign('sha256', Buffer.from(signingInput), {
        key: createPrivateKey({ key: jwk, format: 'jwk' }),
        dsaEncoding: 'ieee-p1363',
      });
      const token = `${signingInput}.${signature.toString('base64url')}`;
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

/**
 * The setup in `home`, without touching its agent: what the connector's start and its
 * instructions need is computable from the directory alone. A missing confirm.toml reads as
 * its defaults, which the first tool call writes.
 */
export function openLocalFleet(home: string, log: Logger): LocalFleet {
  const files = localHomeFiles(home);
  prepareLocalDirectories(home);
  const connectorToml = stringify({
    services_dir: files.services,
    files: { local_dir: files.transfer },
    ...readConfirmSettings(files.confirm),
  });
  const config = parseConnectorConfig(
    connectorToml,
    `${files.confirm} (with the local setup's generated nodes)`,
  );
  log.info('local single-node setup', { home, servicesDir: config.servicesDir });
  let found: Promise<NodeConfig> | undefined;
  const node = async (): Promise<NodeConfig> => {
    const agent = await ensureLocalAgent(home);
    // The node's name as the running agent knows it (agent.toml may have been edited since it
    // started), for RBAC scopes and definitions; an older agent's agent.pid does not say it.
    const nodeName =
      agent.node ?? (await (await import('../agent/config.js')).loadAgentConfig(files.agentConfig)).nodeName;
    log.info('local agent', { agent: agent.address, agentPid: agent.pid, agentStarted: agent.started });
    return { name: nodeName, address: agent.address, caFile: files.ca, serverName: LOCAL_SERVER_NAME };
  };
  return {
    home,
    config,
    bearer: localBearer(home),
    // A failed attempt is not kept: the next call tries again (the agent may have been started meanwhile).
    node: () => {
      found ??= node().catch((err: unknown) => {
        found = undefined;
        throw err;
      });
      return found;
    },
    stop: async () => {},
  };
}
