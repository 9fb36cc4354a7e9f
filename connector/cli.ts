#!/usr/bin/env node
/**
 * mcp: the fleet from a terminal. Every operation is the connector's tool of the same name,
 * called in-process through an MCP session, so arguments are validated, routed, and shown
 * exactly as an AI client would see them.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { McpError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { PACKAGE_VERSION } from '../core/version.js';
import { type ToolDefinition, tools } from '../tools.generated.js';
import { runCaCommand } from './ca-cli.js';
import { defaultConnectorConfigPath, loadConnectorConfig } from './config.js';
import { startConnector } from './connector.js';
import { runLocalAgentCommand } from './local-agent-cli.js';
import { localFleetHome } from './local-fleet.js';

const USAGE = `mcp ${PACKAGE_VERSION}: drive the fleet from a terminal

Usage:
  mcp tools                              list the operations
  mcp help TOOL                          one operation's arguments
  mcp TOOL [key=value ...] [--json]      run an operation
  mcp login [--token-file FILE]          store a bearer token read from stdin (mode 0600)
  mcp ca init | issue NODE --address H   the fleet's CA and node certificates (mcp ca --help)
  mcp agent status | stop | logs         the local setup's agent (mcp agent --help)

Values are read as JSON when they parse as JSON (numbers, true, ["a"], {"k": 1}), else as
text. The connector config is --config FILE, else $MCP_CONFIG, else
~/.config/mcp/connector.toml; without one, mcp uses the local single-node setup.

Examples:
  mcp list_services
  mcp deploy service=web
  mcp stop_service service=web node=node1
  mcp query_audit rpc=Deploy pageSize=20 --json
`;

class UsageError extends Error {}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function parseToolArguments(pairs: readonly string[]): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`'${pair}' is not key=value: for example service=web`);
    args[pair.slice(0, eq)] = parseValue(pair.slice(eq + 1));
  }
  return args;
}

function describeTool(tool: ToolDefinition): string {
  const schema = tool.inputSchema as {
    properties?: Record<string, { description?: string }>;
    required?: string[];
  };
  const required = new Set(schema.required ?? []);
  const lines = Object.entries(schema.properties ?? {}).map(
    ([name, p]) => `  ${name}${required.has(name) ? ' (required)' : ''}: ${p.description ?? ''}`,
  );
  const a = tool.annotations;
  const traits = [
    a.readOnlyHint && 'read-only',
    a.destructiveHint && 'destructive',
    a.idempotentHint && 'idempotent',
  ]
    .filter(Boolean)
    .join(', ');
  return `${tool.name}: ${tool.title} (${traits || 'writes'}; permission ${tool.permission})\n\n${tool.description}\n\nArguments:\n${lines.join('\n')}\n`;
}

async function login(configFile: string, tokenFileFlag: string | undefined): Promise<number> {
  const tokenFile =
    tokenFileFlag ??
    (existsSync(configFile) ? (await loadConnectorConfig(configFile)).auth.tokenFile : undefined);
  if (!tokenFile) throw new UsageError(`no connector config at ${configFile}: give --token-file FILE`);
  const token = readFileSync(0, 'utf8').trim();
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
    throw new UsageError('stdin does not hold a bearer token (one line of base64url/JWT characters)');
  }
  mkdirSync(dirname(tokenFile), { recursive: true, mode: 0o700 });
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  process.stdout.write(`token stored in ${tokenFile}\n`);
  return 0;
}

async function callTool(
  tool: ToolDefinition,
  args: Record<string, unknown>,
  opts: { configFile: string; localHome?: string; json: boolean },
): Promise<number> {
  const log = createLogger({
    level: 'warn',
    write: (line) => process.stderr.write(line),
    base: { program: 'mcp' },
  });
  const connector = await startConnector({
    configFile: opts.configFile,
    localHome: opts.localHome,
    tools,
    log,
  });
  // A linked in-memory pair carries a 2025-era session only (initialize, then calls): enough
  // here, where client and server are this process and no protocol revision is negotiated.
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const server = connector.tools.createServer();
  const client = new Client({ name: 'mcp-cli', version: PACKAGE_VERSION });
  try {
    await server.connect(serverSide);
    await client.connect(clientSide);
    const result = await client.callTool(
      { name: tool.name, arguments: args },
      {
        timeout: (tool.timeoutSeconds + 30) * 1000,
        onprogress: (p) => process.stderr.write(`${p.message ?? ''}\n`),
      },
    );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result.structuredContent ?? result.content, null, 2)}\n`);
    } else {
      for (const item of result.content as Array<{ type: string; text?: string }>) {
        if (item.type === 'text') process.stdout.write(`${item.text}\n`);
      }
    }
    return result.isError ? 1 : 0;
  } finally {
    await client.close();
    await connector.close();
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'ca') return runCaCommand(argv.slice(1));
  if (argv[0] === 'agent') return runLocalAgentCommand(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      json: { type: 'boolean' },
      'token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.version) {
    process.stdout.write(`${PACKAGE_VERSION}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 64;
  }
  const configFile = values.config ?? defaultConnectorConfigPath(process.env);
  const noConfig = values.config === undefined && !process.env.MCP_CONFIG && !existsSync(configFile);
  const byName = (name: string) => {
    const tool = tools.find((t) => t.name === name);
    if (!tool) throw new UsageError(`unknown operation '${name}': run 'mcp tools' for the list`);
    return tool;
  };
  switch (command) {
    case 'tools':
      for (const t of tools) process.stdout.write(`${t.name.padEnd(20)} ${t.title}\n`);
      return 0;
    case 'help':
      process.stdout.write(describeTool(byName(rest[0] ?? '')));
      return 0;
    case 'login':
      return login(configFile, values['token-file']);
    default:
      return callTool(byName(command), parseToolArguments(rest), {
        configFile,
        localHome: noConfig ? localFleetHome() : undefined,
        json: values.json ?? false,
      });
  }
}

main(process.argv.slice(2)).then(
  // Exit once stdout has drained: output to a pipe is written asynchronously.
  (code) => process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    const message =
      err instanceof McpError || usage ? (err as Error).message : String((err as Error)?.stack ?? err);
    process.stderr.write(`mcp: ${message}\n`);
    process.exit(usage ? 64 : 1);
  },
);
