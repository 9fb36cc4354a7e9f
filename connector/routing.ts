/**
 * Which node answers a tool call, and what is sent to it. Each tool's binding
 * (tool-bindings.ts) names one of three strategies:
 *
 * - fan-out reads: every configured node at once when no `node` is given, one entry per
 *   node back, each with its result or its error;
 * - single-node writes: one node, the `node` argument, else the node the service's
 *   definition file names, else the only configured node; the binding's write target says
 *   how the node and the request are found (deploy sends the definition file as the spec);
 * - file transfer: push_file and pull_file, streamed to or from the node that runs the service.
 */
import { randomUUID } from 'node:crypto';
import { InvalidArgumentError, McpError, toMcpError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type * as pb from '../gen/mcp/v1/mcp.js';
import {
  type ToolCodecs,
  type ToolDefinition,
  type ToolName,
  type ToolOutput,
  type ToolRequest,
  toolCodecs,
} from '../tools.generated.js';
import type { AgentConnection, AgentPool, CallSettings } from './agent-client.js';
import { type ConnectorConfig, findNode, type NodeConfig } from './config.js';
import { type LocatedDefinition, locateDefinition } from './definitions.js';
import { LocalDirectory, type TransferProgress } from './file-transfer.js';
import { type FileTransferRoute, type ToolBinding, toolBindings, type WriteRoute } from './tool-bindings.js';
import type { PreparedWrite } from './write-targets.js';

/** Tool arguments after schema validation. */
export type ToolArguments = Record<string, unknown>;

/** What a call needs from the MCP request that carries it. */
export interface RouteContext {
  /** The bearer token for the agents, resolved once per call. */
  bearer(): Promise<string>;
  /** Aborted when the MCP client cancels. */
  signal: AbortSignal;
  /** Receives deploy progress; absent when the client asked for none. */
  onProgress?: (progress: pb.DeployProgress) => Promise<void>;
  /** Receives file transfer progress in bytes (push_file, pull_file). */
  onTransfer?: TransferProgress;
  /** A human's answer to the plan this call executes or declines (connector/confirm.ts). */
  confirmation?: string;
}

/** One node's answer: its response (a message of the tool's output type) or its error. */
export interface NodeAnswer<O = unknown> {
  node: string;
  response?: O;
  error?: McpError;
}

export interface RoutedCall<O = unknown> {
  /** One per node asked, in config order. Writes have exactly one, with a response. */
  answers: NodeAnswer<O>[];
  /** What the connector did besides the call, for the text result. */
  notes: string[];
  /** The request id a write was sent with (generated when the caller gave none). */
  requestId?: string;
}

/** One tool call as a strategy sees it. */
interface ToolCall<T extends ToolName> {
  readonly tool: ToolDefinition;
  readonly binding: ToolBinding<T>;
  readonly codecs: ToolCodecs<T>;
  /** The arguments without `node`. */
  readonly fields: ToolArguments;
  readonly explicitNode: string | undefined;
  readonly ctx: RouteContext;
}

export class Router {
  private readonly reads: FanOutReads;
  private readonly writes: SingleNodeWrites;
  private readonly transfers: FileTransfers;

  constructor(config: ConnectorConfig, pool: AgentPool, log: Logger) {
    const fleet = new Fleet(config);
    this.reads = new FanOutReads(fleet, pool, log);
    this.writes = new SingleNodeWrites(fleet, pool);
    this.transfers = new FileTransfers(fleet, pool);
  }

  async call<T extends ToolName>(
    tool: ToolDefinition & { readonly name: T },
    args: ToolArguments,
    ctx: RouteContext,
  ): Promise<RoutedCall<ToolOutput<T>>> {
    const { node, ...fields } = args;
    const binding: ToolBinding<T> = toolBindings[tool.name];
    const call: ToolCall<T> = {
      tool,
      binding,
      codecs: toolCodecs[tool.name],
      fields,
      explicitNode: typeof node === 'string' ? node : undefined,
      ctx,
    };
    const route = binding.route;
    switch (route.strategy) {
      case 'fanOutRead':
        return this.reads.call(call);
      case 'singleNodeWrite':
        return this.writes.call(call, route);
      case 'fileTransfer':
        return this.transfers.call(call, route);
    }
  }
}

/** What every agent call of a tool carries besides its request. */
async function settingsOf(tool: ToolDefinition, ctx: RouteContext): Promise<CallSettings> {
  return {
    token: await ctx.bearer(),
    timeoutSeconds: tool.timeoutSeconds,
    readOnly: tool.annotations.readOnlyHint,
    tool: tool.name,
    signal: ctx.signal,
    ...(ctx.confirmation ? { confirmation: ctx.confirmation } : {}),
  };
}

/** Fan-out reads: every node (or the one named) at once; a node's failure is its entry's error. */
class FanOutReads {
  constructor(
    private readonly fleet: Fleet,
    private readonly pool: AgentPool,
    private readonly log: Logger,
  ) {}

  async call<T extends ToolName>(call: ToolCall<T>): Promise<RoutedCall<ToolOutput<T>>> {
    const { tool, binding, codecs } = call;
    if (binding.output.from !== 'response') {
      throw new Error(`${tool.name}: a fan-out read returns its RPC's response; fix its binding`);
    }
    const toOutput = binding.output.toOutput;
    const targets =
      call.explicitNode !== undefined ? [this.fleet.node(call.explicitNode)] : this.fleet.allNodes();
    const request = codecs.request.fromJSON(call.fields);
    const settings = await settingsOf(tool, call.ctx);
    const answers = await Promise.all(
      targets.map(async (target): Promise<NodeAnswer<ToolOutput<T>>> => {
        try {
          const response = await this.pool.connection(target.name).unary(codecs, request, settings);
          return { node: target.name, response: toOutput(response) };
        } catch (err) {
          const error = toMcpError(err);
          this.log.info('node answered with an error', {
            tool: tool.name,
            node: target.name,
            code: error.code,
          });
          return { node: target.name, error };
        }
      }),
    );
    return { answers, notes: [] };
  }
}

/**
 * Single-node writes: the binding's write target picks the node and completes the request;
 * the call carries a request id (generated when the caller gave none) so a retry is safe.
 */
class SingleNodeWrites {
  constructor(
    private readonly fleet: Fleet,
    private readonly pool: AgentPool,
  ) {}

  async call<T extends ToolName>(
    call: ToolCall<T>,
    route: WriteRoute<T>,
  ): Promise<RoutedCall<ToolOutput<T>>> {
    const given = call.fields.requestId;
    const requestId = typeof given === 'string' && given !== '' ? given : randomUUID();
    const target = await route.target(
      call.codecs.request.fromJSON({ ...call.fields, requestId }),
      call.explicitNode,
      this.fleet,
    );
    const settings = { ...(await settingsOf(call.tool, call.ctx)), requestId };
    const prepared = Array.isArray(target) ? target : [target as PreparedWrite<ToolRequest<T>>];
    // Several nodes (sync from the definition files) are written at once; one failing does
    // not stop the others, and its error is its own answer's.
    const several = prepared.length > 1;
    const outcomes = await Promise.all(
      prepared.map(async (write): Promise<{ answer: NodeAnswer<ToolOutput<T>>; notes: string[] }> => {
        try {
          const agent = this.pool.connection(write.node.name);
          const before = (await write.before?.(agent, settings)) ?? [];
          const response = await this.send(call, agent, write.request, settings);
          // A dry run changed nothing on the node, and so changes nothing here either.
          const dryRun = (write.request as { dryRun?: boolean }).dryRun === true;
          const after = dryRun ? [] : ((await write.after?.(write.node, response)) ?? []);
          return {
            answer: { node: write.node.name, response },
            notes: [...write.notes, ...before, ...after],
          };
        } catch (err) {
          const e = toMcpError(err);
          const explained = write.explain?.(e) ?? e;
          if (!several) throw explained;
          return { answer: { node: write.node.name, error: explained }, notes: write.notes };
        }
      }),
    );
    const answers = outcomes.map((o) => o.answer);
    const notes = outcomes.flatMap((o) => o.notes);
    const failed = answers.flatMap((a) => (a.error ? [`${a.node}: ${a.error.message}`] : []));
    if (failed.length === answers.length) {
      const first = answers[0]?.error;
      throw new McpError(first?.code ?? 'UNAVAILABLE', `no node was written: ${failed.join('; ')}`);
    }
    if (!route.merge) return { answers, notes, requestId };
    const node = answers.map((a) => a.node).join(', ');
    return { answers: [{ node, response: route.merge(answers) }], notes, requestId };
  }

  /** A unary write returns its response; a streamed one its binding's pick of the stream. */
  private async send<T extends ToolName>(
    { tool, binding, codecs, ctx }: ToolCall<T>,
    agent: AgentConnection,
    request: ToolRequest<T>,
    settings: CallSettings & { requestId: string },
  ): Promise<ToolOutput<T>> {
    const output = binding.output;
    switch (output.from) {
      case 'response':
        return output.toOutput(await agent.unary(codecs, request, settings));
      case 'stream': {
        let result: ToolOutput<T> | undefined;
        await agent.stream(codecs, request, settings, async (message) => {
          const part = output.collect(message);
          if (part.progress) await ctx.onProgress?.(part.progress);
          if (part.output) result = part.output;
        });
        if (!result) {
          throw new McpError(
            'INTERNAL',
            `agent ${agent.node.name} ended the ${tool.name} stream without a result, so the outcome is unknown: check with service_status; retrying with requestId "${settings.requestId}" is safe`,
          );
        }
        return result;
      }
      case 'fileTransfer':
        throw new Error(`${tool.name}: a single-node write cannot assemble a file transfer; fix its binding`);
    }
  }
}

/** File transfer: one file of one service, on the node that runs it, within `[files] local_dir`. */
class FileTransfers {
  constructor(
    private readonly fleet: Fleet,
    private readonly pool: AgentPool,
  ) {}

  async call<T extends ToolName>(
    call: ToolCall<T>,
    route: FileTransferRoute<T>,
  ): Promise<RoutedCall<ToolOutput<T>>> {
    const { config } = this.fleet;
    const service = typeof call.fields.service === 'string' ? call.fields.service : '';
    const located = call.explicitNode === undefined ? await this.fleet.definition(service) : undefined;
    const target = this.fleet.writeNode(service, call.explicitNode, located);
    const response = await route.transfer({
      agent: this.pool.connection(target.name),
      codecs: call.codecs,
      fields: call.fields,
      settings: await settingsOf(call.tool, call.ctx),
      local: new LocalDirectory(config.files.localDir),
      inlineMaxBytes: config.files.inlineMaxBytes,
      onTransfer: call.ctx.onTransfer,
    });
    return { answers: [{ node: target.name, response }], notes: [] };
  }
}

/** The configured nodes and service definitions, as routing consults them. */
export class Fleet {
  constructor(readonly config: ConnectorConfig) {}

  /** The definition file of `service`, if there is one. */
  definition(service: string): Promise<LocatedDefinition | undefined> {
    return locateDefinition(this.config.servicesDir, service);
  }

  /** The node a write on `service` goes to: `node`, else its definition's, else the only one. */
  writeNode(
    service: string,
    explicitNode: string | undefined,
    located: LocatedDefinition | undefined,
  ): NodeConfig {
    if (explicitNode !== undefined) return this.node(explicitNode);
    if (located) {
      const named = this.config.nodes.find((n) => n.name === located.definition.node);
      if (!named) {
        throw new InvalidArgumentError(
          `${located.file} puts service "${service}" on node "${located.definition.node}", which is not configured in ${this.config.configFile} (nodes: ${this.nodeList()}): add it under [[nodes]] or fix the file`,
        );
      }
      return named;
    }
    return this.onlyNode(`service "${service}"`);
  }

  onlyNode(what: string): NodeConfig {
    const nodes = this.allNodes();
    if (nodes.length === 1 && nodes[0]) return nodes[0];
    throw new InvalidArgumentError(
      `which node? ${what} has no definition in ${this.config.servicesDir} and ${nodes.length} nodes are configured (${this.nodeList()}): pass \`node\`, or write a definition file with node = "..." in ${this.config.servicesDir}`,
    );
  }

  allNodes(): NodeConfig[] {
    if (this.config.nodes.length === 0) {
      throw new McpError(
        'FAILED_PRECONDITION',
        `no nodes are configured: add a [[nodes]] entry (name, address, ca_file) to ${this.config.configFile}`,
      );
    }
    return this.config.nodes;
  }

  node(name: string): NodeConfig {
    return findNode(this.config, name);
  }

  private nodeList(): string {
    return this.config.nodes.map((n) => n.name).join(', ') || 'none';
  }
}
