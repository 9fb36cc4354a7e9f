/**
 * Which node answers a tool call, and what is sent to it. Reads (`fanOut` tools) go to every
 * configured node at once when no `node` is given, and come back one entry per node, each
 * with its result or its error. Writes go to one node: the `node` argument, else the node the
 * service's definition file names, else the only configured node. `deploy` with a service
 * name sends the definition file as the spec; without a file, the agent deploys what its
 * registry recorded.
 */
import { randomUUID } from 'node:crypto';
import { InvalidArgumentError, McpError, toMcpError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import * as pb from '../gen/mcp/v1/mcp.js';
import type { ToolDefinition } from '../tools.generated.js';
import { type AgentPool, type CallSettings, type RpcBinding, rpcBinding } from './agent-client.js';
import { type ConnectorConfig, findNode, type NodeConfig } from './config.js';
import {
  definitionPath,
  definitionToSpec,
  type LocatedDefinition,
  locateDefinition,
  setDefinitionActive,
} from './definitions.js';
import { LocalDirectory, pullFile, pushFile, type TransferProgress } from './file-transfer.js';

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
}

/** One node's answer: its response (a message of the tool's output type) or its error. */
export interface NodeAnswer {
  node: string;
  response?: unknown;
  error?: McpError;
}

export interface RoutedCall {
  /** One per node asked, in config order. Writes have exactly one, with a response. */
  answers: NodeAnswer[];
  /** What the connector did besides the call, for the text result. */
  notes: string[];
  /** The request id a write was sent with (generated when the caller gave none). */
  requestId?: string;
}

export class Router {
  constructor(
    private readonly config: ConnectorConfig,
    private readonly pool: AgentPool,
    private readonly log: Logger,
  ) {}

  async call(tool: ToolDefinition, args: ToolArguments, ctx: RouteContext): Promise<RoutedCall> {
    const { node, ...fields } = args;
    const explicitNode = typeof node === 'string' ? node : undefined;
    if (tool.fanOut) return this.fanOut(tool, fields, explicitNode, ctx);
    if (tool.name === 'push_file' || tool.name === 'pull_file')
      return this.transfer(tool, fields, explicitNode, ctx);

    const requestId =
      typeof fields.requestId === 'string' && fields.requestId !== '' ? fields.requestId : randomUUID();
    const request = { ...fields, requestId };
    switch (tool.name) {
      case 'deploy':
        return this.deploy(tool, request, explicitNode, ctx);
      case 'sync_desired_state':
        return this.sync(tool, request, explicitNode, ctx);
      case 'stop_service':
      case 'start_service':
      case 'restart_service':
      case 'adopt_containers':
        return this.lifecycle(tool, request, explicitNode, ctx);
      default:
        throw new InvalidArgumentError(`${tool.name}: the connector cannot route this tool yet`);
    }
  }

  /** Every node (or the one named) at once; a node's failure is its entry's error. */
  private async fanOut(
    tool: ToolDefinition,
    fields: ToolArguments,
    explicitNode: string | undefined,
    ctx: RouteContext,
  ): Promise<RoutedCall> {
    const targets = explicitNode !== undefined ? [this.node(explicitNode)] : this.allNodes();
    const binding = rpcBinding(tool.name);
    const request = binding.request.fromJSON(fields);
    const settings = await this.settings(tool, ctx);
    const answers = await Promise.all(
      targets.map(async (target): Promise<NodeAnswer> => {
        try {
          return {
            node: target.name,
            response: await this.pool.connection(target.name).unary(binding, request, settings),
          };
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

  /**
   * Deploy a `spec`, or a `service` by name: its definition file's spec when there is one,
   * else what the node's registry recorded. Progress messages go to `ctx.onProgress`.
   */
  private async deploy(
    tool: ToolDefinition,
    fields: ToolArguments & { requestId: string },
    explicitNode: string | undefined,
    ctx: RouteContext,
  ): Promise<RoutedCall> {
    const request = pb.DeployRequest.fromJSON(fields);
    const name = request.spec?.name || request.service;
    if (name === '') {
      throw new InvalidArgumentError(
        `deploy: give \`service\` (a service defined in ${this.config.servicesDir} or already known to the node) or a full \`spec\``,
      );
    }
    if (request.spec && request.service !== '' && request.service !== request.spec.name) {
      throw new InvalidArgumentError(
        `deploy: \`service\` is "${request.service}" but \`spec.name\` is "${request.spec.name}": give one of them`,
      );
    }

    const notes: string[] = [];
    let located: LocatedDefinition | undefined;
    if (!request.spec) {
      located = await locateDefinition(this.config.servicesDir, name);
      if (located) {
        if (explicitNode !== undefined && explicitNode !== located.definition.node) {
          throw new InvalidArgumentError(
            `deploy: ${located.file} puts service "${name}" on node "${located.definition.node}", not "${explicitNode}": change node in that file to move the service, or leave out \`node\``,
          );
        }
        request.spec = definitionToSpec(located.definition);
        request.service = '';
        notes.push(`spec from ${located.file}`);
      } else {
        notes.push(`no definition file for "${name}": deployed what the node's registry recorded`);
      }
    }
    const target = await this.writeNode(name, explicitNode, located);

    const binding = rpcBinding(tool.name);
    const settings = { ...(await this.settings(tool, ctx)), requestId: request.requestId };
    let result: pb.DeployResult | undefined;
    try {
      await this.pool.connection(target.name).stream(binding, request, settings, async (message) => {
        const event = message as pb.DeployResponse;
        if (event.progress) await ctx.onProgress?.(event.progress);
        if (event.result) result = event.result;
      });
    } catch (err) {
      const e = toMcpError(err);
      if (e.code === 'NOT_FOUND' && !request.spec) {
        throw new McpError(
          'NOT_FOUND',
          `${e.message}. There is no definition file for "${name}" either: write one at ${definitionPath(this.config.servicesDir, name)} (name, node, and a [[components]] table with name and image), or pass \`spec\`, then deploy again`,
          { cause: err },
        );
      }
      throw e;
    }
    if (!result) {
      throw new McpError(
        'INTERNAL',
        `agent ${target.name} ended the deploy stream without a result, so the outcome is unknown: check with service_status; retrying with requestId "${request.requestId}" is safe`,
      );
    }
    return { answers: [{ node: target.name, response: result }], notes, requestId: request.requestId };
  }

  /** stop, start, restart and adopt: one service on one node. Stop and start also flip `active` in its definition file. */
  private async lifecycle(
    tool: ToolDefinition,
    fields: ToolArguments & { requestId: string },
    explicitNode: string | undefined,
    ctx: RouteContext,
  ): Promise<RoutedCall> {
    const service = typeof fields.service === 'string' ? fields.service : '';
    const component = typeof fields.component === 'string' ? fields.component : '';
    const flipsActive = (tool.name === 'stop_service' || tool.name === 'start_service') && component === '';
    const located =
      explicitNode === undefined || flipsActive
        ? await locateDefinition(this.config.servicesDir, service)
        : undefined;
    const target = await this.writeNode(service, explicitNode, located);
    const response = await this.unary(tool, rpcBinding(tool.name), fields, target, ctx);

    const notes: string[] = [];
    if (flipsActive && located && located.definition.node === target.name) {
      const active = tool.name === 'start_service';
      try {
        await setDefinitionActive(located.file, active);
        notes.push(`${located.file}: active = ${active}`);
      } catch (err) {
        notes.push(`could not set active = ${active} in ${located.file}: ${toMcpError(err).message}`);
      }
    }
    return { answers: [{ node: target.name, response }], notes, requestId: fields.requestId };
  }

  /** push_file and pull_file: one file of one service, on the node that runs it. */
  private async transfer(
    tool: ToolDefinition,
    fields: ToolArguments,
    explicitNode: string | undefined,
    ctx: RouteContext,
  ): Promise<RoutedCall> {
    const service = typeof fields.service === 'string' ? fields.service : '';
    const located =
      explicitNode === undefined ? await locateDefinition(this.config.servicesDir, service) : undefined;
    const target = await this.writeNode(service, explicitNode, located);
    const agent = this.pool.connection(target.name);
    const binding = rpcBinding(tool.name);
    const settings = await this.settings(tool, ctx);
    const local = new LocalDirectory(this.config.files.localDir);
    const response =
      tool.name === 'push_file'
        ? await pushFile(agent, binding, fields, settings, local, ctx.onTransfer)
        : await pullFile(
            agent,
            binding,
            fields,
            settings,
            local,
            this.config.files.inlineMaxBytes,
            ctx.onTransfer,
          );
    return { answers: [{ node: target.name, response }], notes: [] };
  }

  /** Sync goes to one node: the one all the given services are defined on, unless `node` says otherwise. */
  private async sync(
    tool: ToolDefinition,
    fields: ToolArguments & { requestId: string },
    explicitNode: string | undefined,
    ctx: RouteContext,
  ): Promise<RoutedCall> {
    let target: NodeConfig;
    if (explicitNode !== undefined) {
      target = this.node(explicitNode);
    } else {
      const names = (Array.isArray(fields.services) ? fields.services : []).map((s) =>
        String((s as { name?: unknown }).name),
      );
      const byNode = new Map<string, string[]>();
      for (const name of names) {
        const located = await locateDefinition(this.config.servicesDir, name);
        if (!located) continue;
        byNode.set(located.definition.node, [...(byNode.get(located.definition.node) ?? []), name]);
      }
      if (byNode.size > 1) {
        const groups = [...byNode].map(([node, services]) => `${node} (${services.join(', ')})`).join('; ');
        throw new InvalidArgumentError(
          `sync_desired_state: these services are defined on different nodes: ${groups}. Sync one node at a time: call again with \`node\` and that node's services`,
        );
      }
      const [definedOn] = byNode.keys();
      target =
        definedOn !== undefined ? this.node(definedOn) : this.onlyNode(`the services ${names.join(', ')}`);
    }
    const response = await this.unary(tool, rpcBinding(tool.name), fields, target, ctx);
    return { answers: [{ node: target.name, response }], notes: [], requestId: fields.requestId };
  }

  private async unary(
    tool: ToolDefinition,
    binding: RpcBinding,
    fields: ToolArguments & { requestId: string },
    target: NodeConfig,
    ctx: RouteContext,
  ): Promise<unknown> {
    const settings = { ...(await this.settings(tool, ctx)), requestId: fields.requestId };
    return this.pool.connection(target.name).unary(binding, binding.request.fromJSON(fields), settings);
  }

  private async settings(tool: ToolDefinition, ctx: RouteContext): Promise<CallSettings> {
    return {
      token: await ctx.bearer(),
      timeoutSeconds: tool.timeoutSeconds,
      readOnly: tool.annotations.readOnlyHint,
      tool: tool.name,
      signal: ctx.signal,
    };
  }

  /** The node a write on `service` goes to: `node`, else its definition's, else the only one. */
  private async writeNode(
    service: string,
    explicitNode: string | undefined,
    located: LocatedDefinition | undefined,
  ): Promise<NodeConfig> {
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

  private onlyNode(what: string): NodeConfig {
    const nodes = this.allNodes();
    if (nodes.length === 1 && nodes[0]) return nodes[0];
    throw new InvalidArgumentError(
      `which node? ${what} has no definition in ${this.config.servicesDir} and ${nodes.length} nodes are configured (${this.nodeList()}): pass \`node\`, or write a definition file with node = "..." in ${this.config.servicesDir}`,
    );
  }

  private allNodes(): NodeConfig[] {
    if (this.config.nodes.length === 0) {
      throw new McpError(
        'FAILED_PRECONDITION',
        `no nodes are configured: add a [[nodes]] entry (name, address, ca_file) to ${this.config.configFile}`,
      );
    }
    return this.config.nodes;
  }

  private node(name: string): NodeConfig {
    return findNode(this.config, name);
  }

  private nodeList(): string {
    return this.config.nodes.map((n) => n.name).join(', ') || 'none';
  }
}
