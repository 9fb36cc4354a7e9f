/**
 * The files of the local single-node setup, under one directory (`$MCP_HOME`, else
 * `~/.local/state/mcp`):
 *
 *   ca.crt, ca.key             a CA made on first run
 *   agent.crt, agent.key       the agent's TLS certificate (127.0.0.1, localhost)
 *   issuer.jwk, issuer.pub.jwk the local token issuer's ES256 key pair
 *   agent.toml                 the agent's config (edit it freely: it is only written once)
 *   agent.pid                  the running agent: pid, address, start time (written by the agent)
 *   agent.lock                 held by a client while it starts the agent
 *   agent.log                  the agent's log (it runs detached)
 *   confirm.toml               which writes ask a human first ([confirm]; edit freely)
 *   registry.db                the registry and audit log
 *   services/                  service definitions (TOML)
 *   srv/                       files root (push_file / pull_file)
 *   transfer/                  the only local directory push_file / pull_file may use
 *   backups/                   snapshots
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { localAgentConfigFile } from '../core/local-home.js';
import { DEFAULT_CONFIRM_TOOLS } from './confirm.js';

export const LOCAL_ISSUER = 'https://local.mcp.invalid';
export const LOCAL_AUDIENCE = 'mcp-local';
export const LOCAL_SUBJECT = 'local-operator';
export const LOCAL_NODE = 'local';
/** The name the agent's certificate carries and the connector checks. */
export const LOCAL_SERVER_NAME = 'localhost';

export const localHomeFiles = (home: string) => ({
  agentConfig: localAgentConfigFile(home),
  confirm: join(home, 'confirm.toml'),
  pid: join(home, 'agent.pid'),
  lock: join(home, 'agent.lock'),
  log: join(home, 'agent.log'),
  ca: join(home, 'ca.crt'),
  issuerKey: join(home, 'issuer.jwk'),
  services: join(home, 'services'),
  transfer: join(home, 'transfer'),
});

function writeSecret(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600 });
}

/**
 * The setup's directories, made at a client's start (cheap, and the instructions name
 * services/ and transfer/ before any tool call).
 */
export function prepareLocalDirectories(home: string): void {
  for (const dir of [home, join(home, 'services'), join(home, 'srv'), join(home, 'transfer')]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
}

/** Creates what is missing; never overwrites what exists, so edits to agent.toml stay. */
export async function prepareLocalHome(home: string): Promise<void> {
  prepareLocalDirectories(home);
  const file = (name: string) => join(home, name);
  // The X.509 library is loaded only to make what is missing: once made, a client's start skips it.
  const certs = () => import('./certs.js');
  if (!existsSync(file('ca.crt')) || !existsSync(file('ca.key'))) {
    const ca = await (await certs()).createCertificateAuthority('mcp local CA');
    writeFileSync(file('ca.crt'), ca.certPem);
    writeSecret(file('ca.key'), ca.keyPem);
  }
  if (!existsSync(file('agent.crt')) || !existsSync(file('agent.key'))) {
    const ca = {
      certPem: readFileSync(file('ca.crt'), 'utf8'),
      keyPem: readFileSync(file('ca.key'), 'utf8'),
    };
    const cert = await (await certs()).issueCertificate(ca, {
      commonName: LOCAL_NODE,
      dnsNames: [LOCAL_SERVER_NAME],
      ipAddresses: ['127.0.0.1'],
    });
    writeFileSync(file('agent.crt'), cert.certPem);
    writeSecret(file('agent.key'), cert.keyPem);
  }
  if (!existsSync(file('issuer.jwk')) || !existsSync(file('issuer.pub.jwk'))) {
    const { exportJWK, generateKeyPair } = await import('jose');
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
      node_name: LOCAL_NODE,
      database: file('registry.db'),
      // An ephemeral port: the agent records the one it got in agent.pid, where clients look.
      server: { listen: '127.0.0.1:0', tls_cert: file('agent.crt'), tls_key: file('agent.key') },
      issuers: [
        {
          type: 'jwt',
          issuer: LOCAL_ISSUER,
          key_file: file('issuer.pub.jwk'),
          audience: LOCAL_AUDIENCE,
          algorithms: ['ES256'],
        },
      ],
      rbac: { bindings: [{ issuer: LOCAL_ISSUER, subject: LOCAL_SUBJECT, roles: ['admin'] }] },
      files: { root: file('srv') },
      backups: { dir: file('backups') },
    };
    const header =
      '# The agent of the local single-node setup, written once by mcp-connector. Edit freely,\n' +
      '# then restart it: mcp agent stop (the next client starts it again).\n' +
      '# Reference: deploy/examples/agent.toml in the mcp package.\n\n';
    writeSecret(file('agent.toml'), header + stringify(config));
  }
  if (!existsSync(file('confirm.toml'))) {
    writeFileSync(
      file('confirm.toml'),
      [
        '# Which writes of the local setup ask you first, as [confirm] of a connector config',
        '# (deploy/examples/connector.toml). Read by every client at its start.',
        '[confirm]',
        '# Destructive tools ask before a change to what runs; [] asks for nothing.',
        `tools = ${JSON.stringify(DEFAULT_CONFIRM_TOOLS)}`,
        '# A client that cannot show a question (no MCP elicitation): "refuse" its writes that',
        '# need a yes, or "allow" them unconfirmed (a trusted local setup).',
        'when_client_cannot_ask = "refuse"',
        '',
      ].join('\n'),
    );
  }
}
