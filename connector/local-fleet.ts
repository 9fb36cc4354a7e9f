/**
 * The embedded single-node setup: what `mcp-connector` runs when no connector config exists.
 * It keeps everything under one directory (`$MCP_HOME`, else `~/.local/state/mcp`):
 *
 *   ca.crt, ca.key             a CA made on first run
 *   agent.crt, agent.key       the agent's TLS certificate (127.0.0.1, localhost)
 *   issuer.jwk, issuer.pub.jwk the local token issuer's ES256 key pair
 *   agent.toml                 the agent's config (edit it freely: it is only written once)
 *   registry.db                the registry and audit log
 *   services/                  service definitions (TOML)
 *   srv/                       files root (push_file / pull_file)
 *   transfer/                  the only local directory push_file / pull_file may use
 *   backups/                   snapshots
 *
 * The agent runs in this process on loopback, with the same code and the same checks as on a
 * fleet node: TLS, a token on every call (signed here, by the local issuer), RBAC, audit.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { stringify } from 'smol-toml';
import { type RunningAgent, startAgent } from '../agent/agent.js';
import { loadAgentConfig } from '../agent/config.js';
import type { Logger } from '../core/log.js';
import { createCertificateAuthority, issueCertificate } from './certs.js';
import { type ConnectorConfig, parseConnectorConfig } from './config.js';
import type { BearerSource } from './tokens.js';

const ISSUER = 'https://local.mcp.invalid';
const AUDIENCE = 'mcp-local';
const SUBJECT = 'local-operator';
const NODE = 'local';
const TOKEN_LIFETIME_S = 600;

export { localFleetHome } from './local-home.js';

export interface LocalFleet {
  readonly home: string;
  readonly config: ConnectorConfig;
  readonly bearer: BearerSource;
  stop(): Promise<void>;
}

function writeSecret(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600 });
}

/** Creates what is missing; never overwrites what exists, so edits to agent.toml stay. */
async function prepare(home: string): Promise<void> {
  for (const dir of [home, join(home, 'services'), join(home, 'srv'), join(home, 'transfer')]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const file = (name: string) => join(home, name);
  if (!existsSync(file('ca.crt')) || !existsSync(file('ca.key'))) {
    const ca = await createCertificateAuthority('mcp local CA');
    writeFileSync(file('ca.crt'), ca.certPem);
    writeSecret(file('ca.key'), ca.keyPem);
  }
  if (!existsSync(file('agent.crt')) || !existsSync(file('agent.key'))) {
    const ca = {
      certPem: readFileSync(file('ca.crt'), 'utf8'),
      keyPem: readFileSync(file('ca.key'), 'utf8'),
    };
    const cert = await issueCertificate(ca, {
      commonName: NODE,
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    writeFileSync(file('agent.crt'), cert.certPem);
    writeSecret(file('agent.key'), cert.keyPem);
  }
  if (!existsSync(file('issuer.jwk')) || !existsSync(file('issuer.pub.jwk'))) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = `local-${Date.now().toString(36)}`;
    writeSecret(file('issuer.jwk'), JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: 'ES256' }));
    writeFileSync(
      file('issuer.pub.jwk'),
      JSON.stringify({ ...(await exportJWK(publicKey)), kid, alg: 'ES256' }),
    );
  }
  if (!existsSync(file('agent.toml'))) {
    const config = {
      node_name: NODE,
      database: file('registry.db'),
      server: { listen: '127.0.0.1:0', tls_cert: file('agent.crt'), tls_key: file('agent.key') },
      issuers: [
        {
          type: 'jwt',
          issuer: ISSUER,
          key_file: file('issuer.pub.jwk'),
          audience: AUDIENCE,
          algorithms: ['ES256'],
        },
      ],
      rbac: { bindings: [{ issuer: ISSUER, subject: SUBJECT, roles: ['admin'] }] },
      files: { root: file('srv') },
      backups: { dir: file('backups') },
    };
    const header =
      '# The agent of the local single-node setup, written once by mcp-connector. Edit freely.\n' +
      '# Reference: deploy/examples/agent.toml in the mcp package.\n\n';
    writeSecret(file('agent.toml'), header + stringify(config));
  }
}

/** Signs short-lived tokens as the local operator; one token is reused until a minute before it expires. */
function localBearer(home: string): BearerSource {
  const jwk = JSON.parse(readFileSync(join(home, 'issuer.jwk'), 'utf8')) as JWK;
  let cached: { token: string; expiresAt: number } | undefined;
  return {
    description: `the local issuer in ${home}`,
    async token() {
      const now = Date.now();
      if (cached && cached.expiresAt - now > 60_000) return cached.token;
      const key = await importJWK(jwk, 'ES256');
      const token = await new SignJWT({ client_id: 'mcp-connector' })
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'at+jwt' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(SUBJECT)
        .setIssuedAt()
        .setExpirationTime(Math.floor(now / 1000) + TOKEN_LIFETIME_S)
        .sign(key);
      cached = { token, expiresAt: now + TOKEN_LIFETIME_S * 1000 };
      return token;
    },
  };
}

export async function startLocalFleet(home: string, log: Logger): Promise<LocalFleet> {
  await prepare(home);
  const agentConfig = await loadAgentConfig(join(home, 'agent.toml'));
  const agent: RunningAgent = await startAgent(agentConfig, { log: log.child({ program: 'mcp-agent' }) });
  const connectorToml = stringify({
    services_dir: join(home, 'services'),
    nodes: [
      {
        name: agentConfig.nodeName,
        address: `127.0.0.1:${agent.port}`,
        ca_file: join(home, 'ca.crt'),
        server_name: 'localhost',
      },
    ],
    files: { local_dir: join(home, 'transfer') },
  });
  const config = parseConnectorConfig(connectorToml, join(home, 'connector (local setup)'));
  log.info('local single-node setup', {
    home,
    agent: `127.0.0.1:${agent.port}`,
    servicesDir: config.servicesDir,
    database: agentConfig.database,
  });
  return { home, config, bearer: localBearer(home), stop: () => agent.stop() };
}
