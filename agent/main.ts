#!/usr/bin/env node
/**
 * mcp-agent: the node agent's command line.
 *
 *   mcp-agent server   [--config FILE]                      serve gRPC (the systemd service)
 *   mcp-agent audit verify [--config FILE] [--anchor SEQ:HASH]...   check the hash chain (and anchors)
 *   mcp-agent audit export [--config FILE] [--since TIME]   audit records as JSON lines on stdout
 *   mcp-agent snapshot [--config FILE]                      consistent copy of the registry
 *   mcp-agent restore  [--config FILE] --from SNAPSHOT      put a snapshot back (agent stopped)
 */
import { parseArgs } from 'node:util';
import { McpError } from '../core/errors.js';
import { PACKAGE_VERSION } from '../core/version.js';
import type { ChainHead } from '../registry/audit.js';
import { openRegistry } from '../registry/db.js';
import { startAgent } from './agent.js';
import { type AgentConfig, loadAgentConfig } from './config.js';
import { restoreSnapshot, snapshotRegistry } from './snapshot.js';

const DEFAULT_CONFIG = '/etc/mcp-agent/agent.toml';

const USAGE = `mcp-agent ${PACKAGE_VERSION}: the mcp node agent

Usage:
  mcp-agent server   [--config FILE]                      serve gRPC over TLS (run by systemd)
  mcp-agent audit verify [--config FILE] [--anchor SEQ:HASH]...
                                                          check the audit log's hash chain; each
                                                          anchor (a head the agent logged) must
                                                          still be in it with that hash
  mcp-agent audit export [--config FILE] [--since TIME] [--format jsonl]
                                                          write audit records as JSON lines to stdout
  mcp-agent snapshot [--config FILE]                      write a consistent copy of the registry
  mcp-agent restore  [--config FILE] --from SNAPSHOT      restore a snapshot (stop the agent first)

The config file defaults to $MCP_AGENT_CONFIG, then ${DEFAULT_CONFIG}.
`;

class UsageError extends Error {}

async function serve(config: AgentConfig): Promise<void> {
  const agent = await startAgent(config);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      process.stderr.write(`mcp-agent: second ${signal}, exiting without waiting\n`);
      process.exit(1);
    }
    agent.stop().then(
      () => process.exit(0),
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
  const registry = openRegistry(config.database, { readonly: true });
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
  const registry = openRegistry(config.database, { readonly: true });
  try {
    const count = registry.audit.exportJsonl(sinceDate, (line) => process.stdout.write(line));
    process.stderr.write(`exported ${count} audit rows\n`);
    return 0;
  } finally {
    registry.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      since: { type: 'string' },
      format: { type: 'string', default: 'jsonl' },
      from: { type: 'string' },
      anchor: { type: 'string', multiple: true },
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
  const configFile = values.config ?? process.env.MCP_AGENT_CONFIG ?? DEFAULT_CONFIG;
  const config = await loadAgentConfig(configFile);
  switch (command) {
    case 'server':
      await serve(config);
      return -1; // keep running until a signal
    case 'audit':
      if (sub === 'verify') return auditVerify(config, values.anchor ?? []);
      if (sub === 'export') return auditExport(config, values.since, values.format ?? 'jsonl');
      throw new UsageError(`unknown audit command '${sub ?? ''}': use 'audit verify' or 'audit export'`);
    case 'snapshot': {
      const registry = openRegistry(config.database);
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
    const message = err instanceof McpError ? err.message : String((err as Error)?.stack ?? err);
    process.stderr.write(`mcp-agent: ${message}\n`);
    process.exit(1);
  },
);
