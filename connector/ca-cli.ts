/**
 * `mcp ca`: the operator's certificate authority for a fleet. `mcp ca init` creates the CA
 * once; `mcp ca issue NODE --address HOST[,HOST...]` gives a node the key and certificate its
 * agent serves, with the names and addresses the connector dials as subject alternative names
 * (the connector checks the agent's certificate against the address it dials, or against the
 * node's `server_name`). Only the operator's machine holds the CA key.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Env, expandHome } from '../core/config-env.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../core/errors.js';
import { checkName } from '../core/spec.js';
import { type CertificateAuthority, createCertificateAuthority, issueCertificate } from './certs.js';

/** Browsers and most TLS stacks refuse leaf certificates valid longer than 398 days. */
export const NODE_CERT_DAYS = 397;
export const CA_DAYS = 3650;

/** Where the agent reads its TLS files (deploy/examples/agent.toml, `[server]`). */
export const AGENT_TLS_DIR = '/etc/mcp-agent/tls';

export const CA_USAGE = `Usage:
  mcp ca init [--dir DIR] [--name NAME]
      create the fleet's CA: DIR/ca.crt and DIR/ca.key (mode 0600); refuses an existing CA
  mcp ca issue NODE --address HOST[,HOST...] [--dir DIR] [--days N]
      a key and certificate for NODE's agent, in DIR/nodes/NODE/ (replaced when issued again);
      HOST is each IP address or DNS name the connector uses to reach the node

DIR defaults to $XDG_CONFIG_HOME/mcp/ca, else ~/.config/mcp/ca.
`;

export function defaultCaDir(env: Env = process.env): string {
  const configHome = env.XDG_CONFIG_HOME || expandHome('~/.config', env);
  return resolve(configHome, 'mcp', 'ca');
}

export interface CaFiles {
  dir: string;
  cert: string;
  key: string;
}

export function caFiles(dir: string): CaFiles {
  return { dir, cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
}

/** Creates the CA in `dir`; an existing CA is never replaced (every node's certificate depends on it). */
export async function initCa(dir: string, commonName = 'mcp fleet CA'): Promise<CaFiles> {
  const files = caFiles(dir);
  for (const file of [files.cert, files.key]) {
    if (existsSync(file)) {
      throw new FailedPreconditionError(
        `${file} already exists: the fleet's nodes trust this CA, so it is not replaced; issue node certificates with it, or give another --dir`,
      );
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCertificateAuthority(commonName, CA_DAYS);
  // The key first and exclusively: a concurrent init loses here instead of mixing two CAs.
  writeFileSync(files.key, ca.keyPem, { mode: 0o600, flag: 'wx' });
  writeFileSync(files.cert, ca.certPem, { mode: 0o644, flag: 'wx' });
  return files;
}

export function loadCa(dir: string): CertificateAuthority {
  const files = caFiles(dir);
  if (!existsSync(files.cert) || !existsSync(files.key)) {
    throw new NotFoundError(`no CA in ${dir} (ca.crt and ca.key): run 'mcp ca init' first, or give --dir`);
  }
  return { certPem: readFileSync(files.cert, 'utf8'), keyPem: readFileSync(files.key, 'utf8') };
}

export interface SubjectAltNames {
  dnsNames: string[];
  ipAddresses: string[];
}

const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `10.0.0.5,node1.lan` → IP and DNS SANs; a port or a URL is refused with what to give instead. */
export function parseAddresses(list: readonly string[]): SubjectAltNames {
  const hosts = list
    .flatMap((item) => item.split(','))
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  if (hosts.length === 0) {
    throw new InvalidArgumentError(
      'give --address with the IP addresses or DNS names the connector uses to reach the node, e.g. --address 10.0.0.5,node1.lan',
    );
  }
  const sans: SubjectAltNames = { dnsNames: [], ipAddresses: [] };
  for (const host of hosts) {
    const bare = host.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare)) sans.ipAddresses.push(bare);
    else if (DNS_NAME.test(host)) sans.dnsNames.push(host.toLowerCase());
    else {
      throw new InvalidArgumentError(
        `"${host}" is neither an IP address nor a DNS name: give hosts without port or scheme, e.g. 10.0.0.5 or node1.lan`,
      );
    }
  }
  return sans;
}

export interface IssuedNode {
  node: string;
  dir: string;
  cert: string;
  key: string;
  /** The CA certificate, for the connector's `ca_file`. */
  caCert: string;
  notAfter: Date;
  sans: SubjectAltNames;
}

export async function issueNode(
  caDir: string,
  node: string,
  addresses: readonly string[],
  days = NODE_CERT_DAYS,
): Promise<IssuedNode> {
  const problem = checkName(node);
  if (problem) throw new InvalidArgumentError(`node name "${node}": ${problem}`);
  if (!Number.isInteger(days) || days < 1 || days > NODE_CERT_DAYS) {
    throw new InvalidArgumentError(`--days ${days}: give a whole number of days from 1 to ${NODE_CERT_DAYS}`);
  }
  const sans = parseAddresses(addresses);
  const ca = loadCa(caDir);
  const issued = await issueCertificate(ca, { commonName: node, ...sans, days });
  const dir = join(caDir, 'nodes', node);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = { cert: join(dir, 'agent.crt'), key: join(dir, 'agent.key'), caCert: join(dir, 'ca.crt') };
  writeFileSync(files.key, issued.keyPem, { mode: 0o600 });
  writeFileSync(files.cert, issued.certPem, { mode: 0o644 });
  writeFileSync(files.caCert, ca.certPem, { mode: 0o644 });
  return { node, dir, ...files, notAfter: issued.notAfter, sans };
}

function whatToCopy(issued: IssuedNode, caCert: string): string {
  const names = [
    ...issued.sans.ipAddresses.map((a) => `IP ${a}`),
    ...issued.sans.dnsNames.map((d) => `DNS ${d}`),
  ];
  return `issued a certificate for node ${issued.node} (${names.join(', ')}), valid until ${issued.notAfter.toISOString()}

Copy ${issued.cert} and ${issued.key} to ${issued.node} (scp), then there, as root, from where you copied them:
  install -d -m 0700 ${AGENT_TLS_DIR}
  install -m 0644 agent.crt ${AGENT_TLS_DIR}/agent.crt
  install -m 0600 agent.key ${AGENT_TLS_DIR}/agent.key
  systemctl restart mcp-agent

In the connector config, for this node:
  [[nodes]]
  name = "${issued.node}"
  address = "${issued.sans.ipAddresses[0] ?? issued.sans.dnsNames[0]}:7443"
  ca_file = "${caCert}"
`;
}

/** `mcp ca ...`; returns the exit code. Errors are thrown for the CLI to print. */
export async function runCaCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      name: { type: 'string' },
      address: { type: 'string', multiple: true },
      days: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [sub, node, ...extra] = positionals;
  const dir = resolve(values.dir ? expandHome(values.dir, env) : defaultCaDir(env));
  if (values.help || !sub) {
    process.stdout.write(CA_USAGE);
    return values.help ? 0 : 64;
  }
  if (sub === 'init' && node === undefined) {
    const files = await initCa(dir, values.name);
    process.stdout.write(
      `created the fleet CA: ${files.cert} (give it to the connector as ca_file) and ${files.key} (mode 0600: keep it on this machine)\nnext: mcp ca issue NODE --address HOST[,HOST...]\n`,
    );
    return 0;
  }
  if (sub === 'issue' && node !== undefined && extra.length === 0) {
    const days = values.days === undefined ? NODE_CERT_DAYS : Number(values.days);
    const issued = await issueNode(dir, node, values.address ?? [], days);
    process.stdout.write(whatToCopy(issued, caFiles(dir).cert));
    return 0;
  }
  throw new InvalidArgumentError(`'mcp ca ${positionals.join(' ')}' is not a ca command\n${CA_USAGE}`);
}
