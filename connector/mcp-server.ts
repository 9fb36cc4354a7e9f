/**
 * The MCP server: publishes the contract's tools (schemas, titles, annotations from
 * tools.generated.ts), checks each call's arguments against its input schema, hands it to
 * the router, and turns the answer into a result: `structuredContent` matching the tool's
 * output schema and a short table as text. Agent errors are tool results with
 * `isError: true` and the text `CODE: message`, so a model can read and act on them; only an
 * unknown tool is a protocol error.
 *
 * One Server per serving unit: a stdio connection, a 2025-era HTTP session (or request, with
 * `--stateless`), or one 2026-07-28 HTTP request. The same factory serves both protocol eras;
 * `createServer` is cheap: the validators are compiled with the contract, the listing once in
 * `ConnectorTools`.
 */

import {
  type AuthInfo,
  CLIENT_CAPABILITIES_META_KEY,
  type ClientCapabilities,
  isInputRequiredResult,
  type JSONRPCRequest,
  LOG_LEVEL_META_KEY,
  type LoggingLevel,
  PROTOCOL_VERSION_META_KEY,
  ProtocolError,
  ProtocolErrorCode,
  type Result,
  Server,
  type ServerContext,
  type Tool,
} from '@modelcontextprotocol/server';
import { toMcpError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type * as pb from '../gen/mcp/v1/mcp.js';
import type { ToolDefinition, ToolName, ToolOutput } from '../tools.generated.js';
import type { ArgumentValidator } from './arguments.js';
import type { ConfirmSettings } from './confirm.js';
import { McpConfirmations } from './confirm-elicitation.js';
import { publishedInputs, publishedOutput } from './published-schema.js';
import type { RouteContext, RoutedCall, Router } from './routing.js';
import type { ProgressModel } from './tool-bindings.js';
import type * as ToolCallModules from './tool-call-modules.js';
import { errorResult, invalidArguments, toolResult } from './tool-result.js';

export const SERVER_NAME = 'mcp-connector';

export interface ConnectorToolsOptions {
  tools: readonly ToolDefinition[];
  router: Pick<Router, 'call'>;
  /**
   * The token for the agents: the caller's own in authenticated HTTP mode (`authInfo` set),
   * else the connector's configured source.
   */
  bearerFor(authInfo: AuthInfo | undefined): Promise<string>;
  servicesDir: string;
  /** `[files] local_dir`, named in the instructions. */
  localDir: string;
  version: string;
  log: Logger;
  /** Longest quiet time between progress notifications of a pending call; default 4 s. */
  heartbeatMs?: number;
  /** `[confirm]`: whose plans a human confirms; none when absent (a model's planDigest is dropped either way). */
  confirm?: ConfirmSettings;
  /** The config file, named when a call is refused for want of a human to ask. */
  configFile?: string;
}

/** The published tools, compiled once, and the factory of MCP servers that serve them. */
export class ConnectorTools {
  private readonly byName: ReadonlyMap<string, ToolDefinition>;
  private readonly listing: Tool[];
  private callPath: Promise<CallPath> | undefined;
  private readonly confirmations: McpConfirmations;

  constructor(private readonly opts: ConnectorToolsOptions) {
    this.byName = new Map(opts.tools.map((t) => [t.name, t]));
    this.listing = toolListing(opts.tools);
    this.confirmations = new McpConfirmations(
      opts.confirm ?? { tools: new Set(), whenClientCannotAsk: 'refuse' },
      opts.configFile ?? 'the connector config',
    );
  }

  /** Validators, codecs and formatting, loaded on the first tools/call (tool-call-modules.ts). */
  private loadCallPath(): Promise<CallPath> {
    this.callPath ??= import('./tool-call-modules.js').then((modules) => ({
      ...modules,
      validator: new modules.ArgumentValidator(this.opts.tools),
    }));
    return this.callPath;
  }

  createServer(): Server {
    const server = new ConnectorServer(
      { name: SERVER_NAME, title: 'mcp fleet connector', version: this.opts.version },
      {
        capabilities: { tools: {}, logging: {} },
        instructions: instructions(this.opts),
        // 2026-07-28 results carry cache hints. The tool list and the server's description are
        // fixed for the life of this process and the same for every caller.
        cacheHints: { 'tools/list': LISTING_CACHE, 'server/discover': LISTING_CACHE },
        // The state of a confirmation question is sealed here; anything else echoed is refused.
        requestState: { verify: this.confirmations.verifyState },
      },
    );
    // Logging is deprecated in 2026-07-28 but kept for 2025 clients. A 2025 session starts at
    // 'warning' until the client asks for another level (the SDK's own handler would send
    // everything until then); a 2026 request names its level in `_meta`, and gets no log
    // messages without one.
    let level: LoggingLevel = 'warning';
    server.setRequestHandler('logging/setLevel', async (request) => {
      level = request.params.level;
      return {};
    });
    const logThreshold = (ctx: ServerContext): LoggingLevel | undefined => {
      // The SDK 2.4.0 declares the envelope as `{}`; its keys are the `_meta` names.
      const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
      if (envelope?.[PROTOCOL_VERSION_META_KEY] === undefined) return level;
      return envelope[LOG_LEVEL_META_KEY] as LoggingLevel | undefined;
    };
    server.setRequestHandler('tools/list', async () => ({ tools: this.listing }));
    server.setRequestHandler('tools/call', async (request, ctx) => {
      const tool = this.byName.get(request.params.name);
      if (!tool) {
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `unknown tool "${request.params.name}": the tools are ${[...this.byName.keys()].join(', ')}`,
        );
      }
      const call = await this.loadCallPath();
      const { errorText } = call;
      const check = call.validator.check(tool.name, request.params.arguments);
      if (!check.ok) {
        return invalidArguments(tool.name, check.problems);
      }
      const threshold = logThreshold(ctx);
      // Request-scoped notifications: they travel with this call's response in every mode.
      const notify = (messageLevel: LoggingLevel, data: string) =>
        threshold === undefined || LEVELS.indexOf(messageLevel) < LEVELS.indexOf(threshold)
          ? Promise.resolve()
          : ctx.mcpReq
              .notify({
                method: 'notifications/message',
                params: { level: messageLevel, logger: SERVER_NAME, data },
              })
              .catch(() => {});
      const progressToken = ctx.mcpReq._meta?.progressToken;
      const progress = new ProgressChannel(
        tool,
        call.toolBindings[tool.name].progress,
        progressToken === undefined
          ? undefined
          : (params) =>
              ctx.mcpReq
                .notify({ method: 'notifications/progress', params: { progressToken, ...params } })
                .catch(() => {}),
        this.opts.heartbeatMs ?? HEARTBEAT_MS,
      );
      const started = performance.now();
      try {
        const routeContext: RouteContext = {
          bearer: () => this.opts.bearerFor(ctx.http?.authInfo),
          signal: ctx.mcpReq.signal,
          onProgress: async (step) => {
            const message = `${step.component}: ${step.step}: ${step.message}`;
            await notify('info', `deploy ${step.service}: ${message}`);
            await progress.step(step, message);
          },
          onTransfer: (bytes, total) => progress.transfer(bytes, total),
        };
        // A write whose plan needs a human's yes asks first (connector/confirm.ts).
        const outcome = await this.confirmations.call(
          tool.name,
          check.args,
          ctx,
          clientCanAsk(server, ctx),
          (args, confirmation) =>
            this.opts.router.call(
              tool,
              args,
              confirmation ? { ...routeContext, confirmation } : routeContext,
            ),
        );
        if (isInputRequiredResult(outcome)) return outcome;
        const routed = outcome as RoutedCall<ToolOutput<typeof tool.name>>;
        for (const a of routed.answers)
          if (a.error) await notify('warning', `${tool.name}: ${a.node}: ${errorText(a.error)}`);
        const result = toolResult(tool, routed, call);
        await progress.finish(result.isError ? 'failed' : 'done');
        this.opts.log.info('tool call', {
          tool: tool.name,
          nodes: routed.answers.map((a) => a.node),
          errors: routed.answers.filter((a) => a.error).map((a) => `${a.node}: ${a.error?.code}`),
          durationMs: Math.round(performance.now() - started),
        });
        return result;
      } catch (err) {
        const e = toMcpError(err);
        await progress.finish(`failed: ${e.code}`);
        this.opts.log[e.code === 'INTERNAL' ? 'error' : 'info']('tool call failed', {
          tool: tool.name,
          code: e.code,
          error: e.message,
          durationMs: Math.round(performance.now() - started),
        });
        return errorResult(errorText(e));
      } finally {
        progress.close();
      }
    });
    return server;
  }
}

/**
 * The tools/list answer. Every byte here is context a model pays for before its first call (the
 * budget is in test/unit/contract.test.ts), so a tool carries its name, description, schemas and
 * the annotations a client acts on: `readOnlyHint` on reads; on writes `destructiveHint`, always,
 * and `idempotentHint` where it holds. No `title`: the names read as titles, and the CLI and
 * docs/tools.md keep the contract's. No `openWorldHint`: its default, open, is the cautious
 * reading for tools that pull from registries and run what they pull.
 */
export function toolListing(tools: readonly ToolDefinition[]): Tool[] {
  const inputs = publishedInputs(tools.map((t) => t.inputSchema));
  return tools.map((t, i): Tool => {
    const a = t.annotations;
    const annotations: Tool['annotations'] = a.readOnlyHint
      ? { readOnlyHint: true }
      : {
          destructiveHint: a.destructiveHint,
          ...(a.idempotentHint ? { idempotentHint: true } : {}),
        };
    return {
      name: t.name,
      description: t.description,
      inputSchema: inputs[i] as Tool['inputSchema'],
      outputSchema: publishedOutput(t.outputSchema, t.fanOut) as Tool['outputSchema'],
      annotations,
    };
  });
}

type CallPath = typeof ToolCallModules & { validator: ArgumentValidator };

/** Five minutes: a restarted connector may publish another tool set (--read-only, --tools). */
const LISTING_CACHE = { ttlMs: 5 * 60_000, cacheScope: 'public' } as const;

/**
 * The SDK's server, with one readable line for a tools/call whose params do not have the
 * shape of the protocol (`arguments` as a string, a missing name): the SDK answers those
 * -32602 with its schema library's issue list, which a model cannot act on.
 */
class ConnectorServer extends Server {
  protected override _wrapHandler(
    method: string,
    handler: (request: JSONRPCRequest, ctx: ServerContext) => Promise<Result>,
  ): (request: JSONRPCRequest, ctx: ServerContext) => Promise<Result> {
    const wrapped = super._wrapHandler(method, handler);
    if (method !== 'tools/call') return wrapped;
    return async (request, ctx) => {
      try {
        return await wrapped(request, ctx);
      } catch (err) {
        if (err instanceof ProtocolError && err.code === ProtocolErrorCode.InvalidParams) {
          const problem = callParamsProblem(request.params);
          if (problem) throw new ProtocolError(ProtocolErrorCode.InvalidParams, problem);
        }
        throw err;
      }
    };
  }
}

/** What is wrong with tools/call params, in one line; undefined when their shape is right. */
export function callParamsProblem(params: unknown): string | undefined {
  const shape = (value: unknown) =>
    value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    return `tools/call params must be an object with "name" and "arguments", not ${shape(params)}`;
  }
  const { name, arguments: args } = params as { name?: unknown; arguments?: unknown };
  if (typeof name !== 'string') return `tools/call needs the tool's "name" as a string, not ${shape(name)}`;
  if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
    return `the arguments of ${name} must be a JSON object of named values (for example {"service": "web"}), not ${shape(args)}`;
  }
  return undefined;
}

const LEVELS: readonly LoggingLevel[] = [
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
];

/** At most this long without a progress notification while a call is pending (clients time out at 60 s). */
const HEARTBEAT_MS = 4000;
/**
 * A pause between the last progress notification and the result. The TypeScript SDK's client
 * handles a notification that arrives in the same read as the response after the response,
 * and drops it (typescript-sdk #2580): the pause keeps the final step in a read of its own.
 */
const SETTLE_MS = 25;

type ProgressParams = { progress: number; total?: number; message: string };

/**
 * The progress notifications of one call, when the client sent a progressToken. MCP progress
 * must increase with every notification:
 * - deploy: the components completed plus how far the current step is into its component
 *   (the tool's progress model); a step that would not move it forward (components deployed
 *   side by side) is reported as a log message only;
 * - push_file, pull_file: bytes;
 * - any call: a heartbeat after HEARTBEAT_MS without a notification (a podman stop or pull
 *   waiting), creeping towards the next step without reaching it; stop, start and restart are
 *   unary RPCs, so their heartbeats are all the progress they have;
 * - every call that sent progress, and every write, ends with a final notification
 *   (progress = total) before its result.
 */
class ProgressChannel {
  private last = -1;
  /** The value heartbeats start from, and how far they may creep without reaching the next step. */
  private anchor = 0;
  private gap: number;
  private beats = 0;
  private finished = false;
  private total: number | undefined;
  private sent = 0;
  private readonly started = performance.now();
  private lastSentAt = performance.now();
  private timer: NodeJS.Timeout | undefined;
  /** Notifications go out one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly tool: ToolDefinition,
    private readonly model: ProgressModel | undefined,
    private readonly send: ((params: ProgressParams) => Promise<void>) | undefined,
    heartbeatMs: number,
  ) {
    this.gap = model ? MODEL_STEP_GAP : 1;
    if (send) this.timer = setInterval(() => void this.heartbeat(heartbeatMs), heartbeatMs).unref();
  }

  step(step: pb.DeployProgress, message: string): Promise<void> {
    const value = step.completed + (this.model?.stepFraction[step.step] ?? 0);
    return this.emit(value, step.total, message, MODEL_STEP_GAP);
  }

  transfer(bytes: number, total: number): Promise<void> {
    return this.emit(bytes, total, `${bytes} of ${total} bytes`, 1);
  }

  /** The final step, unless the last notification already was one (progress = total). */
  finish(outcome: string): Promise<void> {
    this.finished = true;
    if (!this.send || this.total === this.last) return this.settle();
    if (this.tool.fanOut && this.sent === 0) return this.queue;
    const total =
      this.total !== undefined && this.total > this.last
        ? this.total
        : Math.max(1, Math.floor(this.last) + 1);
    const seconds = Math.round((performance.now() - this.started) / 1000);
    return this.emit(total, total, `${this.tool.name}: ${outcome} after ${seconds} s`, 1).then(() =>
      this.settle(),
    );
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private heartbeat(heartbeatMs: number): Promise<void> {
    if (this.finished || performance.now() - this.lastSentAt < heartbeatMs - 50) return this.queue;
    // Never past the total: a heartbeat after the last step waits below it.
    const room = this.total === undefined ? this.gap : Math.min(this.gap, this.total - this.anchor);
    if (room <= 0) return this.queue;
    this.beats += 1;
    // anchor + room * n/(n+1): always increasing, never reaching the next step.
    const value = this.anchor + (room * this.beats) / (this.beats + 1);
    const seconds = Math.round((performance.now() - this.started) / 1000);
    const doing = WAITING[this.tool.name] ?? 'waiting for the node';
    return this.emit(value, this.total, `${this.tool.name}: ${doing} (${seconds} s)`, undefined);
  }

  /** `gap`: how far heartbeats after this value may go; undefined for a heartbeat itself. */
  private emit(
    value: number,
    total: number | undefined,
    message: string,
    gap: number | undefined,
  ): Promise<void> {
    const send = this.send;
    if (!send || value <= this.last) return this.queue;
    this.last = value;
    if (total !== undefined) this.total = total;
    if (gap !== undefined) {
      this.anchor = value;
      this.gap = gap;
      this.beats = 0;
    }
    this.sent += 1;
    this.lastSentAt = performance.now();
    const params: ProgressParams = {
      progress: value,
      message,
      ...(this.total !== undefined ? { total: this.total } : {}),
    };
    this.queue = this.queue.then(() => send(params));
    return this.queue;
  }

  private async settle(): Promise<void> {
    await this.queue;
    if (this.sent > 0) await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  }
}

/** The smallest distance between two steps of a progress model (tool-bindings.ts). */
const MODEL_STEP_GAP = 0.1;

/** What a heartbeat says the call is waiting for. */
const WAITING: Partial<Record<ToolName, string>> = {
  deploy: 'pulling, stopping or starting a container',
  stop_service: 'waiting for the containers to stop',
  start_service: 'starting the containers',
  restart_service: 'waiting for the containers to stop and start again',
  rollback_service: 'replacing the containers with the previous version',
  push_file: 'sending the file',
  pull_file: 'receiving the file',
};

/** What a model needs to know to use the tools together. */
export function instructions({
  servicesDir,
  localDir,
  tools,
}: Pick<ConnectorToolsOptions, 'servicesDir' | 'localDir' | 'tools'>): string {
  const names = (pick: (t: ToolDefinition) => boolean) =>
    tools
      .filter(pick)
      .map((t) => t.name)
      .join(', ') || 'none here';
  return [
    'Container hosts ("nodes") each record services: groups of containers ("components"). Every call is audited.',
    `Reads (${names((t) => t.fanOut)}) ask every node unless given \`node\` and answer {nodes: [{node, result or error}]}; they fail only if no node answered. A write failing for any component is an error.`,
    `Definitions: one TOML file per service in ${servicesDir}, naming its node. Without one, pass \`node\` unless there is one node.`,
    `Destructive: ${names((t) => t.annotations.destructiveHint)}. Ask the user first.`,
    '`component` picks one component; `dryRun` returns the plan, changing nothing. Writes take a requestId (generated if omitted): a retry with the same id is safe. After a timeout: check service_status, retry.',
    `push_file and pull_file use the service's files directory on its node; local files: ${localDir}.`,
    'Errors read CODE: message; PERMISSION_DENIED names the permission missing.',
  ].join('\n\n');
}

/** Whether the client declared it can ask its human (elicitation): per request in 2026-07-28, per connection before. */
function clientCanAsk(server: Server, ctx: ServerContext): boolean {
  // The SDK 2.4.0 declares the envelope as `{}`; its keys are the `_meta` names.
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  const declared =
    (envelope?.[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined) ??
    server.getClientCapabilities();
  return declared?.elicitation !== undefined;
}
