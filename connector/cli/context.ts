/**
 * What every `mcp` command shares: the global options (--config, --node, --json), where the
 * connector config comes from, a session that calls the connector's tools in-process, the
 * exit codes, and how an error is shown.
 *
 * A command calls the same tools an AI client does, in-process (connector/connector.ts): a
 * read through the tools/call steps without the MCP layer (connector/read-call.ts), anything
 * else through an in-memory MCP session. Arguments are checked against the same schemas,
 * routed by the same rules, and answered with the same structured results, so the CLI never
 * drifts from what the tools do.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import type { Command } from 'commander';
import { type ErrorCode, InvalidArgumentError, McpError, toMcpError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { PACKAGE_VERSION } from '../../core/version.js';
import { type ToolName, tools } from '../../gen/tool-catalog.js';
import type { ConnectorCore } from '../connector.js';
import { callReadTool, isDirectRead } from '../read-call.js';
import { detectTerminal, Output } from './output.js';

/** The process exit codes, the same for every command. */
export const ExitCode = {
  ok: 0,
  /** The operation failed (a partly failed deploy included). */
  failed: 1,
  /** The command line was wrong. */
  usage: 2,
  /** Not authenticated, or not permitted. */
  denied: 3,
  /** A node could not be reached in time. */
  unreachable: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeFor(code: string): ExitCode {
  switch (code) {
    case 'UNAUTHENTICATED':
    case 'PERMISSION_DENIED':
      return ExitCode.denied;
    case 'UNAVAILABLE':
    case 'DEADLINE_EXCEEDED':
      return ExitCode.unreachable;
    default:
      return ExitCode.failed;
  }
}

/** The command line itself is wrong (exit 2), as opposed to an operation that failed. */
export class UsageError extends InvalidArgumentError {}

/**
 * A tool answered with an error; `result` is its structured result when it had one, `text`
 * the tool's own text (a partly failed deploy's component table, for one).
 */
export class OperationFailed extends McpError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly result: unknown,
    readonly text: string,
  ) {
    super(code, message);
  }
}

export interface GlobalOptions {
  config?: string;
  node?: string;
  json?: boolean;
  /** Answer yes to every confirmation question (scripts). */
  yes?: boolean;
}

/** Where the connector's settings come from: a config file, or the local single-node setup. */
export interface ConfigSource {
  configFile: string;
  /** Set when there is no config: mcp runs the local setup in this directory. */
  localHome?: string;
}

/** One node's entry in a fan-out result. */
export interface NodeEntry<R = Record<string, unknown>> {
  node: string;
  result?: R;
  error?: { code: string; message: string };
}

export interface CallOptions {
  /** MCP progress notifications of the call, as the connector sends them. */
  onProgress?: (progress: { progress: number; total?: number; message?: string }) => void;
}

/** An answered tool call: the structured result and its text. */
export interface CallAnswer {
  result: Record<string, unknown>;
  text: string;
}

export class CliSession {
  private session: Promise<Client> | undefined;

  constructor(
    private readonly ctx: CliContext,
    private readonly opts: GlobalOptions,
    readonly connector: ConnectorCore,
  ) {}

  /**
   * The in-memory MCP session with the connector, opened for the first call that needs one: a
   * write (its confirmation question comes as elicitation) or a call that shows progress.
   */
  private mcpSession(): Promise<Client> {
    this.session ??= (async () => {
      const [{ Client, InMemoryTransport }, { ConnectorTools }] = await Promise.all([
        import('@modelcontextprotocol/client'),
        import('../mcp-server.js'),
      ]);
      // A linked in-memory pair carries a 2025-era session only (initialize, then calls): enough
      // here, where client and server are this process and no protocol revision is negotiated.
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      const server = new ConnectorTools(this.connector.toolsOptions).createServer();
      // The CLI can ask its human: the connector's confirmation questions (connector/confirm.ts)
      // come here as elicitation requests and are asked on the terminal.
      const client = new Client(
        { name: 'mcp-cli', version: PACKAGE_VERSION },
        { capabilities: { elicitation: { form: {} } } },
      );
      client.setRequestHandler('elicitation/create', async (request) =>
        this.ctx.confirm((request.params as { message: string }).message, this.opts),
      );
      await server.connect(serverSide);
      await client.connect(clientSide);
      return client;
    })();
    return this.session;
  }

  async close(): Promise<void> {
    if (this.session) await (await this.session.catch(() => undefined))?.close();
  }

  /**
   * Calls one tool. A failed call throws OperationFailed with the tool's error code; on a
   * fan-out read, nodes that failed while others answered are warned about on stderr and set
   * the exit code, and their entries stay in the result.
   */
  async call(name: ToolName, args: Record<string, unknown>, opts: CallOptions = {}): Promise<CallAnswer> {
    const tool = tools.find((t) => t.name === name);
    if (!tool) throw new UsageError(`unknown tool '${name}': run 'mcp tools' for the list`);
    // Reads go straight to the connector's call path (read-call.ts); the rest through MCP.
    const answer = isDirectRead(tool, opts.onProgress !== undefined)
      ? await callReadTool(this.connector, tool, args)
      : await (await this.mcpSession()).callTool(
          { name, arguments: args },
          {
            timeout: (tool.timeoutSeconds + 30) * 1000,
            ...(opts.onProgress ? { onprogress: opts.onProgress } : {}),
          },
        );
    const text = (answer.content as Array<{ type: string; text?: string }>)
      .flatMap((c) => (c.type === 'text' && c.text ? [c.text] : []))
      .join('\n');
    // Warnings (an inline env value that looks secret, ...) go to stderr too, where a script sees them.
    for (const line of text.split('\n')) {
      if (line.startsWith('warning: ')) this.ctx.out.warn(line.slice('warning: '.length));
    }
    const result = (answer.structuredContent ?? {}) as Record<string, unknown>;
    const failedNodes = ((result.nodes ?? []) as NodeEntry[]).filter((n) => n.error);
    if (answer.isError) {
      const first = failedNodes[0]?.error;
      if (first) {
        const message = failedNodes.map((n) => `${n.node}: ${n.error?.message}`).join('; ');
        throw new OperationFailed(first.code as ErrorCode, message, result, text);
      }
      const match = /^([A-Z_]+): ([\s\S]*)$/.exec(text);
      throw new OperationFailed(
        (match?.[1] ?? 'INTERNAL') as ErrorCode,
        match?.[2] ?? text,
        answer.structuredContent,
        text,
      );
    }
    for (const n of failedNodes) {
      this.ctx.out.warn(`${n.node}: ${n.error?.code}: ${n.error?.message}`);
      this.ctx.raiseExitCode(exitCodeFor(n.error?.code ?? ''));
    }
    return { result, text };
  }
}

export class CliContext {
  readonly out = new Output(detectTerminal());
  /** --json anywhere on the command line: known before parsing, so usage errors are JSON too. */
  constructor(readonly jsonRequested = false) {}

  /** Every --node given, in order: the audit commands read several nodes at once. */
  readonly nodesNamed: string[] = [];

  private exitCode: ExitCode = ExitCode.ok;

  /** The global options, wherever on the command line they were given. */
  globals(cmd: Command): GlobalOptions {
    return cmd.optsWithGlobals<GlobalOptions>();
  }

  /** The exit code of a run that did not throw: the worst of what the commands noted. */
  get finalExitCode(): ExitCode {
    return this.exitCode;
  }

  raiseExitCode(code: ExitCode): void {
    // Any failure outranks success; between failures the first one noted stands.
    if (this.exitCode === ExitCode.ok) this.exitCode = code;
  }

  /** --config FILE, else $MCP_CONFIG, else ~/.config/mcp/connector.toml, else the local setup. */
  async configSource(opts: GlobalOptions): Promise<ConfigSource> {
    // The config module (and zod under it) loads when a command needs a config, not at start.
    const { defaultConnectorConfigPath } = await import('../config.js');
    const configFile = opts.config ?? defaultConnectorConfigPath(process.env);
    const noConfig = opts.config === undefined && !process.env.MCP_CONFIG && !existsSync(configFile);
    if (!noConfig) return { configFile };
    // The local setup starts an agent in this process: loaded only when there is no config.
    const { localHomeDir } = await import('../../core/local-home.js');
    return { configFile, localHome: localHomeDir() };
  }

  /** The definition files' directory: the config's services_dir, or $MCP_HOME/services locally. */
  async servicesDir(opts: GlobalOptions): Promise<string> {
    const source = await this.configSource(opts);
    if (source.localHome) return join(source.localHome, 'services');
    return (await (await import('../config.js')).loadConnectorConfig(source.configFile)).servicesDir;
  }

  /**
   * Runs `use` with a session to the fleet, closed afterwards. `localDir` stands in for
   * `[files] local_dir`: the operator names files anywhere, a model only inside that directory.
   */
  async withSession<T>(
    opts: GlobalOptions,
    use: (session: CliSession) => Promise<T>,
    setup: { localDir?: string } = {},
  ): Promise<T> {
    const source = await this.configSource(opts);
    // Loaded here, not at the top: help, completion and usage errors start without the
    // connector, gRPC and the MCP SDKs, which take most of a cold start.
    const { openConnector } = await import('../connector.js');
    const log = createLogger({
      level: 'warn',
      write: (line) => process.stderr.write(line),
      base: { program: 'mcp' },
    });
    const connector = await openConnector({
      configFile: source.configFile,
      localHome: source.localHome,
      tools,
      log,
      ...(setup.localDir !== undefined ? { localDir: setup.localDir } : {}),
    });
    const session = new CliSession(this, opts, connector);
    try {
      return await use(session);
    } finally {
      await session.close();
      await connector.close();
    }
  }

  /**
   * A confirmation question of the connector: yes with --yes, else asked on the terminal; with
   * no terminal to ask on, declined with the flag to pass. No answer the model could give is
   * involved: this process is the human's.
   */
  async confirm(
    message: string,
    opts: GlobalOptions,
  ): Promise<{ action: 'accept'; content: { confirm: boolean } } | { action: 'decline' | 'cancel' }> {
    if (opts.yes) {
      process.stderr.write(`${message}\nmcp: --yes: applying it\n`);
      return { action: 'accept', content: { confirm: true } };
    }
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      process.stderr.write(
        `${message}\nmcp: this change needs a yes and there is no terminal to ask on: pass --yes\n`,
      );
      return { action: 'decline' };
    }
    const prompts = await import('@clack/prompts');
    const answer = await prompts.confirm({ message, initialValue: false, output: process.stderr });
    if (prompts.isCancel(answer)) return { action: 'cancel' };
    return answer ? { action: 'accept', content: { confirm: true } } : { action: 'decline' };
  }

  /** Shows `err` (as `{code, message}` on stdout with --json) and returns the exit code. */
  report(err: unknown, json: boolean): ExitCode {
    const commander = commanderExit(err);
    if (commander !== undefined) {
      if (commander.code === ExitCode.ok) return ExitCode.ok;
      if (json) this.out.json({ code: 'INVALID_ARGUMENT', message: commander.message });
      return ExitCode.usage;
    }
    const e = err instanceof McpError ? err : toMcpError(err);
    const exit = err instanceof UsageError ? ExitCode.usage : exitCodeFor(e.code);
    if (json) {
      const result = err instanceof OperationFailed && err.result !== undefined ? { result: err.result } : {};
      this.out.json({ code: e.code, message: e.message, ...result });
    } else if (err instanceof OperationFailed) {
      // The tool's answer is the output, as on success; the exit code says it failed.
      this.out.line(err.text);
      process.stderr.write(`mcp: failed: ${e.code}\n`);
    } else {
      const message =
        e.code === 'INTERNAL' && !(err instanceof McpError)
          ? String((err as Error)?.stack ?? err)
          : e.message;
      process.stderr.write(`mcp: ${e.code}: ${message}\n`);
    }
    return exit;
  }
}

/** Commander's own exits (help, version, usage errors), with the message it already printed. */
function commanderExit(err: unknown): { code: number; message: string } | undefined {
  const e = err as { code?: unknown; exitCode?: unknown; message?: unknown };
  if (typeof e?.code !== 'string' || !e.code.startsWith('commander.')) return undefined;
  if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
    return { code: 0, message: '' };
  }
  return { code: ExitCode.usage, message: String(e.message ?? '').replace(/^error: /, '') };
}
