#!/usr/bin/env node
/**
 * mcp-connector: the MCP server an AI client starts (stdio, the default) or reaches over
 * Streamable HTTP (`--http`). It publishes the agents' operations as tools and routes each
 * call to the right node. stdout carries only the MCP protocol in stdio mode; logs go to
 * stderr as JSON lines.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { McpError, toMcpError } from '../core/errors.js';
import { localHomeDir } from '../core/local-home.js';
import { createLogger, type Logger, type LogLevel } from '../core/log.js';
import { PACKAGE_VERSION } from '../core/version.js';
import { type ConnectorConfig, defaultConnectorConfigPath, requireHttpSettings } from './config.js';
import { startConnector } from './connector.js';
import type { HttpAuth } from './http.js';
import { selectTools } from './tool-selection.js';

const USAGE = `usage: mcp-connector [options]

Publishes the fleet's operations as Model Context Protocol tools. Stdio by default.

With no config (no --config, no $MCP_CONFIG, no ~/.config/mcp/connector.toml) it runs a
complete single-node setup on this machine: an agent on loopback with its own CA and token
issuer, state under $MCP_HOME (default ~/.local/state/mcp).

options:
  --config FILE         connector config (default $MCP_CONFIG, else ~/.config/mcp/connector.toml)
  --http [ADDR]         serve Streamable HTTP on ADDR (host:port; default: [http] listen in the config)
  --stateless           HTTP without sessions for 2025-era clients too (2026-07-28 is always stateless)
  --tls-cert FILE       HTTPS certificate (PEM); required off loopback
  --tls-key FILE        HTTPS private key (PEM)
  --read-only           publish only the read-only tools
  --tools a,b           publish only these tools
  --disable-tools c,d   do not publish these tools
  --log-level LEVEL     debug, info, warn or error (default $MCP_LOG_LEVEL, else info); logs go to stderr
  --version             print the version
  --help                print this help
`;

/** Thrown for a bad command line or config: printed without a stack, exit status 2. */
class UsageError extends Error {}

export interface ConnectorOptions {
  config: string;
  /** No config anywhere: run the embedded single-node setup in this directory. */
  localHome?: string;
  http?: string;
  stateless: boolean;
  tlsCert?: string;
  tlsKey?: string;
  readOnly: boolean;
  tools: string[];
  disableTools: string[];
  logLevel: LogLevel;
}

/** `--http` may stand alone: then the address comes from the config. */
export function parseCommandLine(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ConnectorOptions | 'help' | 'version' {
  const args = [...argv];
  const at = args.indexOf('--http');
  if (at !== -1 && (args[at + 1] === undefined || args[at + 1]?.startsWith('--'))) args.splice(at + 1, 0, '');
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(args).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${USAGE}`);
  }
  if (values.help) return 'help';
  if (values.version) return 'version';
  const list = (value: string | undefined) =>
    (value ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  const logLevel = values['log-level'] ?? env.MCP_LOG_LEVEL ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new UsageError(`--log-level ${logLevel}: expected debug, info, warn or error`);
  }
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together: give both or neither');
  }
  if (values['tls-cert'] !== undefined && values.http === undefined) {
    throw new UsageError('--tls-cert and --tls-key are for HTTP mode: add --http');
  }
  if (values.stateless && values.http === undefined)
    throw new UsageError('--stateless is for HTTP mode: add --http');
  const config = values.config ?? defaultConnectorConfigPath(env);
  const noConfig = values.config === undefined && !env.MCP_CONFIG && !existsSync(config);
  return {
    config,
    localHome: noConfig ? localHomeDir(env) : undefined,
    http: values.http,
    stateless: values.stateless ?? false,
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    readOnly: values['read-only'] ?? false,
    tools: list(values.tools),
    disableTools: list(values['disable-tools']),
    logLevel: logLevel as LogLevel,
  };
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      http: { type: 'string' },
      stateless: { type: 'boolean' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'read-only': { type: 'boolean' },
      tools: { type: 'string' },
      'disable-tools': { type: 'string' },
      'log-level': { type: 'string' },
      version: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
}

/** Caller authentication for HTTP mode, when the config has any of it (then it must be complete). */
function httpAuth(config: ConnectorConfig): HttpAuth | undefined {
  if (config.http.resource === undefined && config.http.issuers.length === 0) return undefined;
  const settings = requireHttpSettings(config);
  return { resource: settings.resource, issuers: settings.issuers };
}

async function run(options: ConnectorOptions, log: Logger): Promise<() => Promise<void>> {
  const tools = selectTools({
    readOnly: options.readOnly,
    only: options.tools,
    disable: options.disableTools,
  });
  const connector = await startConnector({
    configFile: options.config,
    localHome: options.localHome,
    tools,
    log,
  });
  const { config, tools: connectorTools } = connector;

  if (options.http !== undefined) {
    // HTTP mode's server and caller authentication stay unloaded in stdio mode.
    const { startHttpServer } = await import('./http.js');
    const http = await startHttpServer({
      listen: options.http === '' ? config.http.listen : options.http,
      stateless: options.stateless,
      tls:
        options.tlsCert && options.tlsKey
          ? { certFile: options.tlsCert, keyFile: options.tlsKey }
          : undefined,
      auth: httpAuth(config),
      allowedOrigins: config.http.allowedOrigins,
      tools: connectorTools,
      log,
    });
    return async () => {
      await http.close();
      await connector.close();
    };
  }

  // The client's opening exchange picks the era (server/discover for 2026-07-28, initialize
  // for 2025); one server from the factory then serves the connection.
  let closing = false;
  const stdio = serveStdio(() => connectorTools.createServer(), {
    onerror: (error) => log.warn('stdio MCP error', { error: error.message }),
  });
  const stop = async () => {
    if (closing) return;
    closing = true;
    await stdio.close();
    await connector.close();
  };
  // The client closing stdin ends the connection, and the process with it.
  process.stdin.on('end', () => {
    void stop().finally(() => process.exit(0));
  });
  return stop;
}

async function main(): Promise<void> {
  // grpc-js sends a node's address as the TLS server name even when it is an IP address
  // (grpc/grpc-node#1919), and Node warns about that on stderr (DEP0123): a line for every
  // process, in the middle of the output or the JSON log, about nothing the user can change.
  // Deprecations are for whoever develops this code; the tests, which run it from source, see them.
  (process as NodeJS.Process & { noDeprecation: boolean }).noDeprecation = true;
  let options: ReturnType<typeof parseCommandLine>;
  try {
    options = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`mcp-connector: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (options === 'version') {
    process.stdout.write(`${PACKAGE_VERSION}\n`);
    return;
  }
  const log = createLogger({
    level: options.logLevel,
    write: (line) => process.stderr.write(line),
    base: { program: 'mcp-connector' },
  });
  let stop: () => Promise<void>;
  try {
    stop = await run(options, log);
  } catch (err) {
    const e = toMcpError(err);
    // Config and switch problems are the operator's to fix: the message, no stack.
    const known = err instanceof McpError || err instanceof UsageError;
    process.stderr.write(`mcp-connector: ${known ? e.message : ((err as Error).stack ?? e.message)}\n`);
    process.exit(known ? 2 : 1);
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log.info('stopping', { signal });
      stop().finally(() => process.exit(0));
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`mcp-connector: ${String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
