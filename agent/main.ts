#!/usr/bin/env node
/**
 * mcp-agent: the node agent's command line.
 *
 *   mcp-agent server   [--config FILE] [--pid-file FILE]    serve gRPC (the systemd service, or the local setup's agent)
 *   mcp-agent audit verify [--config FILE] [--anchor SEQ:HASH]...   check the hash chain (and anchors)
 *   mcp-agent audit export [--config FILE] [--since TIME]   audit records as JSON lines on stdout
 *   mcp-agent snapshot [--config FILE]                      consistent copy of the registry
 *   mcp-agent restore  [--config FILE] --from SNAPSHOT      put a snapshot back (agent stopped)
 *   mcp-agent init --node NAME --issuer URL --audience AUD ...  write a checked agent.toml
 *
 * A missing or unreadable config, database or certificate is answered with one line saying
 * what is wrong and what to do: these are what an admin meets first on a new node.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FailedPreconditionError, McpError } from '../core/errors.js';
import {
  localAgentConfigFile,
  localHomeDir,
  removeAgentPidFile,
  writeAgentPidFile,
} from '../core/local-home.js';
import { PACKAGE_VERSION } from '../core/version.js';
import type { ChainHead } from '../registry/audit.js';
import { openRegistry } from '../registry/db.js';
import { startAgent } from './agent.js';
import { type AgentConfig, loadAgentConfig, parseAgentConfig } from './config.js';
import { restoreSnapshot, snapshotRegistry } from './snapshot.js';

const DEFAULT_CONFIG = '/etc/mcp-agent/agent.toml';

const USAGE = `mcp-agent ${PACKAGE_VERSION}: the mcp node agent

Usage:
  mcp-agent server   [--config FILE] [--pid-file FILE]    serve gRPC over TLS (run by systemd); with
                                                          --pid-file, record pid, address and start
                                                          time there once listening
  mcp-agent audit verify [--config FILE] [--anchor SEQ:HASH]...
                                                          check the audit log's hash chain; each
                                                          anchor (a head the agent logged) must
                                                          still be in it with that hash
  mcp-agent audit export [--config FILE] [--since TIME] [--format jsonl]
                                                          write audit records as JSON lines to stdout
  mcp-agent snapshot [--config FILE]                      write a consistent copy of the registry
  mcp-agent restore  [--config FILE] --from SNAPSHOT      restore a snapshot (stop the agent first)
  mcp-agent init --node NAME --issuer URL --audience AUD [--jwks-uri URL | --discovery | --key-file F]
                 [--listen ADDR] [--tls-cert F --tls-key F] [--out FILE] [--force]
                                                          write a checked config (default ${DEFAULT_CONFIG};
                                                          an existing one is kept unless --force)

Without --config: $MCP_AGENT_CONFIG; else the first that exists of $MCP_HOME/agent.toml (when
$MCP_HOME is set), ~/.local/state/mcp/agent.toml (the local setup) and ${DEFAULT_CONFIG}.
`;

class UsageError extends Error {}

/** A file the agent must read: a one-line FailedPreconditionError when it cannot. */
function requireReadable(file: string, what: string, fix: string): void {
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FailedPreconditionError(`${what} ${file} does not exist: ${fix}`);
    throw new FailedPreconditionError(
      `${what} ${file} cannot be read (${code}): run as root (the agent's files are root's), or fix its mode`,
    );
  }
}

/** What `server` reads at start, checked first so that a missing file is one line, not a stack. */
function checkServerFiles(config: AgentConfig): void {
  const where = `set in ${config.configFile}`;
  requireReadable(
    config.server.tlsCert,
    'TLS certificate',
    `copy the node's certificate there, or change server.tls_cert (${where}); see RUNBOOK.md`,
  );
  requireReadable(
    config.server.tlsKey,
    'TLS key',
    `copy the node's private key there (mode 0600), or change server.tls_key (${where})`,
  );
  if (config.server.clientCa) {
    requireReadable(
      config.server.clientCa,
      'client CA',
      `copy it there, or remove server.client_ca (${where})`,
    );
  }
  for (const issuer of config.issuers) {
    if ('keyFile' in issuer && issuer.keyFile) {
      requireReadable(issuer.keyFile, 'issuer key file', `copy the issuer's public key there (${where})`);
    }
    if (issuer.caFile)
      requireReadable(issuer.caFile, 'issuer CA file', `copy the CA bundle there (${where})`);
  }
  const dataDir = dirname(config.database);
  if (!existsSync(dataDir)) {
    throw new FailedPreconditionError(
      `the database directory ${dataDir} does not exist: create it (install -d -m 0700 ${dataDir}) or change database (${where})`,
    );
  }
}

/** The registry of a node whose agent has started at least once; one line when it has not. */
function openExistingRegistry(config: AgentConfig, options: { readonly?: boolean } = {}) {
  if (!existsSync(config.database)) {
    throw new FailedPreconditionError(
      `no registry at ${config.database} yet: the agent creates it when it first starts (systemctl start mcp-agent), or check database in ${config.configFile}`,
    );
  }
  requireReadable(config.database, 'registry', 'check database in the config');
  return openRegistry(config.database, options);
}

/**
 * The config to use without --config: the local setup's (under $MCP_HOME or the default home)
 * when it exists, else the system one. None existing is one line naming every path tried.
 */
function discoverConfigFile(env: NodeJS.ProcessEnv): string {
  if (env.MCP_AGENT_CONFIG) return env.MCP_AGENT_CONFIG;
  const tried = [
    ...(env.MCP_HOME ? [localAgentConfigFile(env.MCP_HOME)] : []),
    localAgentConfigFile(localHomeDir({ ...env, MCP_HOME: undefined })),
    DEFAULT_CONFIG,
  ];
  const found = tried.find((file) => existsSync(file));
  if (found) return found;
  throw new FailedPreconditionError(
    `no agent config found (tried ${tried.join(', ')}): give --config FILE, write one with mcp-agent init, or run mcp once to create the local setup`,
  );
}

/** host:port a client on this machine dials: a wildcard listen address is reached on loopback. */
function dialAddress(listen: string, port: number): string {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  const dialHost = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
  return `${dialHost}:${port}`;
}

async function serve(config: AgentConfig, pidFile: string | undefined): Promise<void> {
  const agent = await startAgent(config);
  if (pidFile) {
    // Written once listening, so a client that reads it can connect.
    writeAgentPidFile(pidFile, {
      pid: process.pid,
      address: dialAddress(config.server.listen, agent.port),
      startedAt: new Date().toISOString(),
      node: config.nodeName,
    });
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      process.stderr.write(`mcp-agent: second ${signal}, exiting without waiting\n`);
      process.exit(1);
    }
    agent.stop().then(
      () => {
        if (pidFile) removeAgentPidFile(pidFile, process.pid);
        process.exit(0);
      },
      (err) => {
        process.stderr.write(`mcp-agent: error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** `--anchor SEQ:HASH`: a chain head noted earlier (the agent logs `audit head` with `anchor`). */
function parseAnchor(text: string): ChainHead {
  const match = /^([1-9][0-9]{0,15}):([0-9a-fA-F]{64})$/.exec(text);
  if (!match) {
    throw new UsageError(
      `--anchor '${text}' is not SEQ:HASH: give a record number and its 64-hex-digit hash, as the agent logs them ("audit head" lines, field anchor)`,
    );
  }
  return { seq: Number(match[1]), hash: (match[2] as string).toLowerCase() };
}

function auditVerify(config: AgentConfig, anchorTexts: readonly string[]): number {
  const anchors = anchorTexts.map(parseAnchor);
  const registry = openExistingRegistry(config, { readonly: true });
  try {
    const result = registry.audit.verifyChain(anchors);
    if (result.ok) {
      const head = registry.audit.head();
      const checked = anchors.length > 0 ? `, ${anchors.length} anchor(s) hold` : '';
      process.stdout.write(
        `audit chain OK: ${result.count} records verified in ${config.database}${checked}\n` +
          `head: ${head.seq}:${head.hash} (note it off the node; verify later with --anchor ${head.seq}:${head.hash})\n`,
      );
      if (anchors.length === 0) {
        process.stdout.write(
          'without --anchor, removed newest records or an emptied log cannot be detected: pass anchors the agent logged\n',
        );
      }
      return 0;
    }
    process.stdout.write(`audit chain BROKEN at record ${result.seq}: ${result.reason}\n`);
    return 2;
  } finally {
    registry.close();
  }
}

function auditExport(config: AgentConfig, since: string | undefined, format: string): number {
  if (format !== 'jsonl') throw new UsageError(`unknown --format '${format}': only jsonl is supported`);
  let sinceDate: Date | undefined;
  if (since) {
    sinceDate = new Date(since);
    if (Number.isNaN(sinceDate.getTime())) {
      throw new UsageError(
        `--since '${since}' is not a time: use RFC 3339, for example 2026-11-01T00:00:00Z`,
      );
    }
  }
  const registry = openExistingRegistry(config, { readonly: true });
  try {
    const count = registry.audit.exportJsonl(sinceDate, (line) => process.stdout.write(line));
    process.stderr.write(`exported ${count} audit rows\n`);
    return 0;
  } finally {
    registry.close();
  }
}

export interface InitOptions {
  out: string;
  node?: string;
  issuer?: string;
  audience?: string;
  jwksUri?: string;
  discovery: boolean;
  keyFile?: string;
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  force: boolean;
}

/** A TOML basic string: JSON's escapes are TOML's. */
const tomlString = (value: string) => JSON.stringify(value);

/** The text of a first config: one issuer, the built-in roles, every other setting at its default. */
function initConfigText(
  options: Required<Pick<InitOptions, 'node' | 'issuer' | 'audience'>> & InitOptions,
): string {
  const keys = options.jwksUri
    ? `jwks_uri = ${tomlString(options.jwksUri)}`
    : options.keyFile
      ? `key_file = ${tomlString(options.keyFile)}`
      : 'discovery = true';
  return `# mcp-agent configuration, written by \`mcp-agent init\`. Every setting and its default is
# described in /opt/mcp/current/deploy/examples/agent.toml; RUNBOOK.md says how to run a node.
node_name = ${tomlString(options.node)}

[server]
listen = ${tomlString(options.listen ?? '127.0.0.1:7443')}
tls_cert = ${tomlString(options.tlsCert ?? '/etc/mcp-agent/tls/agent.crt')}
tls_key = ${tomlString(options.tlsKey ?? '/etc/mcp-agent/tls/agent.key')}

# Every call carries a token from this issuer, for this audience.
[[issuers]]
type = "jwt"
issuer = ${tomlString(options.issuer)}
${keys}
audience = ${tomlString(options.audience)}

# Roles: the built-in viewer, operator and admin come from the token's roles claim. Bind
# subjects to roles here when the token carries none, e.g.:
# [[rbac.bindings]]
# issuer = ${tomlString(options.issuer)}
# subject = "mcp-connector"
# roles = ["operator"]

[monitor]
alert_command = ["/usr/local/bin/mcp-alert", "--channel", "ops"]
`;
}

/**
 * \`mcp-agent init\`: writes a config that the agent's own loader has accepted, atomically and
 * mode 0600 (it is root's, like everything the agent keeps), refusing to replace one unless --force.
 */
function initConfig(options: InitOptions): number {
  const { node, issuer, audience } = options;
  if (!node || !issuer || !audience) {
    throw new UsageError('init needs --node NAME, --issuer URL and --audience AUD');
  }
  const sources = [
    options.jwksUri && '--jwks-uri',
    options.discovery && '--discovery',
    options.keyFile && '--key-file',
  ];
  if (sources.filter(Boolean).length > 1) {
    throw new UsageError(
      `give one of --jwks-uri, --discovery or --key-file, not ${sources.filter(Boolean).join(' and ')}`,
    );
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new UsageError('give --tls-cert and --tls-key together (the certificate and its key)');
  }
  const out = resolve(options.out);
  if (existsSync(out) && !options.force) {
    throw new FailedPreconditionError(
      `${out} already exists: it is kept; edit it, or give --force to replace it (or --out FILE for another path)`,
    );
  }
  const text = initConfigText({ ...options, node, issuer, audience });
  // The real loader decides: what it refuses is never written (the file is not read from disk).
  const config = parseAgentConfig(text, out, {});
  mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
  const temp = `${out}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, text, { mode: 0o600, flag: 'wx' });
    renameSync(temp, out);
  } finally {
    rmSync(temp, { force: true });
  }
  process.stdout.write(
    `wrote ${out}: node ${config.nodeName}, listening on ${config.server.listen}, issuer ${issuer} (audience ${audience})\n`,
  );
  const missing = [config.server.tlsCert, config.server.tlsKey].filter((file) => !existsSync(file));
  if (missing.length > 0) {
    process.stdout.write(
      `next: put the node's certificate and key at ${missing.join(' and ')} (mode 0600 for the key)\n`,
    );
  }
  process.stdout.write('then: systemctl enable --now mcp-agent\n');
  return 0;
}

/** One line for an error that ends a command: typed errors as they are, system errors with what to do. */
function oneLine(err: unknown): string {
  if (err instanceof McpError) return err.message;
  const error = err as NodeJS.ErrnoException;
  const code = typeof error?.code === 'string' ? error.code : undefined;
  const file = error?.path ? ` ${error.path}` : '';
  switch (code) {
    case 'ENOENT':
      return `${file.trim() || 'a file'} does not exist: check the path in the config`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on${file || ' a file'}: run as root (the agent's files are root's)`;
    case 'ENOSPC':
    case 'SQLITE_FULL':
      return `the disk is full${file ? ` (writing${file})` : ''}: free space (old snapshots, images: podman image prune), then retry`;
    case 'EROFS':
    case 'SQLITE_READONLY':
      return `cannot write${file}: the file system or database is read-only`;
    case 'SQLITE_CANTOPEN':
      return `cannot open the registry database: ${error.message}; check database in the config and its directory`;
    case 'SQLITE_NOTADB':
    case 'SQLITE_CORRUPT':
      return `the registry database is damaged (${error.message}): restore the newest snapshot (see RUNBOOK.md)`;
    case 'SQLITE_BUSY':
      return 'the registry database is locked by another process: retry in a moment';
  }
  const message = err instanceof Error ? err.message : String(err);
  return process.env.MCP_AGENT_DEBUG
    ? String((err as Error)?.stack ?? err)
    : `${message.split('\n')[0]} (set MCP_AGENT_DEBUG=1 for the stack)`;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'pid-file': { type: 'string' },
      since: { type: 'string' },
      format: { type: 'string', default: 'jsonl' },
      from: { type: 'string' },
      anchor: { type: 'string', multiple: true },
      node: { type: 'string' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      'jwks-uri': { type: 'string' },
      discovery: { type: 'boolean' },
      'key-file': { type: 'string' },
      listen: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.version) {
    process.stdout.write(`${PACKAGE_VERSION}\n`);
    return 0;
  }
  const [command, sub] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 64;
  }
  if (command === 'init') {
    return initConfig({
      out: values.out ?? values.config ?? process.env.MCP_AGENT_CONFIG ?? DEFAULT_CONFIG,
      node: values.node,
      issuer: values.issuer,
      audience: values.audience,
      jwksUri: values['jwks-uri'],
      discovery: values.discovery ?? false,
      keyFile: values['key-file'],
      listen: values.listen,
      tlsCert: values['tls-cert'],
      tlsKey: values['tls-key'],
      force: values.force ?? false,
    });
  }
  const config = await loadAgentConfig(values.config ?? discoverConfigFile(process.env));
  switch (command) {
    case 'server':
      checkServerFiles(config);
      await serve(config, values['pid-file'] && resolve(values['pid-file']));
      return -1; // keep running until a signal
    case 'audit':
      if (sub === 'verify') return auditVerify(config, values.anchor ?? []);
      if (sub === 'export') return auditExport(config, values.since, values.format ?? 'jsonl');
      throw new UsageError(`unknown audit command '${sub ?? ''}': use 'audit verify' or 'audit export'`);
    case 'snapshot': {
      const registry = openExistingRegistry(config);
      try {
        const { file } = await snapshotRegistry({
          registry,
          dir: config.backups.dir,
          keep: config.backups.keep,
        });
        process.stdout.write(`${file}\n`);
        return 0;
      } finally {
        registry.close();
      }
    }
    case 'restore': {
      if (!values.from) throw new UsageError('restore needs --from SNAPSHOT: the snapshot file to restore');
      requireReadable(values.from, 'snapshot', `check the path (snapshots are in ${config.backups.dir})`);
      const dataDir = dirname(config.database);
      if (!existsSync(dataDir)) {
        throw new FailedPreconditionError(
          `the database directory ${dataDir} does not exist: create it (install -d -m 0700 ${dataDir}) first`,
        );
      }
      const result = await restoreSnapshot({ snapshot: values.from, database: config.database });
      process.stdout.write(
        `restored ${values.from} into ${config.database}${result.previous ? ` (previous database kept at ${result.previous})` : ''}\n`,
      );
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit once stdout has drained: output to a pipe is written asynchronously.
    if (code >= 0) process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`mcp-agent: ${(err as Error).message}\n\n${USAGE}`);
      process.exit(64);
    }
    process.stderr.write(`mcp-agent: ${oneLine(err)}\n`);
    process.exit(1);
  },
);
