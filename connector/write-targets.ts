/**
 * Where a single-node write goes and what it sends, per kind of write: the binding of each
 * write tool (tool-bindings.ts) names one of these. Stop and start also flip `active` in the
 * service's definition file; deploy by name sends that file as the spec.
 */
import { InvalidArgumentError, McpError, toMcpError } from '../core/errors.js';
import type * as pb from '../gen/mcp/v1/mcp.js';
import { toolCodecs } from '../tools.generated.js';
import type { AgentConnection, CallSettings } from './agent-client.js';
import type { NodeConfig } from './config.js';
import {
  definitionPath,
  definitionToSpec,
  deleteDefinition,
  type LocatedDefinition,
  loadDefinitions,
  type ServiceDefinition,
  secretEnvWarnings,
  setDefinitionActive,
  specToDefinition,
  updateDefinition,
} from './definitions.js';
import type { Fleet } from './routing.js';

/** The node a write goes to and the request it sends, with what the connector did to find them. */
export interface PreparedWrite<Req> {
  readonly node: NodeConfig;
  readonly request: Req;
  readonly notes: string[];
  /**
   * Runs before the write is sent, on the same agent; returns notes. It must not throw: a
   * failure there does not stop the write.
   */
  readonly before?: (agent: AgentConnection, settings: CallSettings) => Promise<string[]>;
  /** Runs after the agent answered, with its answer (the tool's output); returns notes. */
  readonly after?: (node: NodeConfig, response: unknown) => Promise<string[]>;
  /** Rewrites the agent's error when the connector knows more about what to do. */
  readonly explain?: (error: McpError) => McpError;
}

/** Where a write goes: one node, or (sync from the definition files) several, one request each. */
export type WriteTarget<Req> = (
  request: Req,
  explicitNode: string | undefined,
  fleet: Fleet,
) => Promise<PreparedWrite<Req> | readonly PreparedWrite<Req>[]>;

/**
 * deploy: a `spec`, or a `service` by name: its definition file's spec when there is one,
 * else what the node's registry recorded. The definition file is the declared intent: a
 * `spec` deployed without failure is written to it; a deploy by name says where the file
 * differs from what the node recorded (the file wins).
 */
export const deploySpec: WriteTarget<pb.DeployRequest> = async (request, explicitNode, fleet) => {
  const { servicesDir } = fleet.config;
  const name = request.spec?.name || request.service;
  if (name === '') {
    throw new InvalidArgumentError(
      `deploy: give \`service\` (a service defined in ${servicesDir} or already known to the node) or a full \`spec\``,
    );
  }
  if (request.spec && request.service !== '' && request.service !== request.spec.name) {
    throw new InvalidArgumentError(
      `deploy: \`service\` is "${request.service}" but \`spec.name\` is "${request.spec.name}": give one of them`,
    );
  }

  const notes: string[] = [];
  const byName = !request.spec;
  if (!byName) return inlineSpec(request, explicitNode, fleet);

  const located = await fleet.definition(name);
  let before: PreparedWrite<pb.DeployRequest>['before'];
  if (located) {
    if (explicitNode !== undefined && explicitNode !== located.definition.node) {
      throw new InvalidArgumentError(
        `deploy: ${located.file} puts service "${name}" on node "${located.definition.node}", not "${explicitNode}": change node in that file to move the service, or leave out \`node\``,
      );
    }
    request.spec = definitionToSpec(located.definition);
    request.service = '';
    notes.push(`spec from ${located.file}`, ...secretEnvWarnings(located.definition, located.file));
    before = (agent, settings) => recordedDifference(agent, settings, located.definition);
  } else {
    notes.push(`no definition file for "${name}": deployed what the node's registry recorded`);
  }
  const node = fleet.writeNode(name, explicitNode, located);
  const withoutSpec = !request.spec;
  return {
    node,
    request,
    notes,
    before,
    explain: (e) =>
      e.code === 'NOT_FOUND' && withoutSpec
        ? new McpError(
            'NOT_FOUND',
            `${e.message}. There is no definition file for "${name}" either: write one at ${definitionPath(servicesDir, name)} (name, node, and a [[components]] table with name and image), or pass \`spec\`, then deploy again`,
            { cause: e.cause ?? e },
          )
        : e,
  };
};

/**
 * deploy with a `spec`: to `node`, else the node its definition file names, else the only
 * one. Once the node has deployed it without failure, the spec is written to that file.
 */
async function inlineSpec(
  request: pb.DeployRequest,
  explicitNode: string | undefined,
  fleet: Fleet,
): Promise<PreparedWrite<pb.DeployRequest>> {
  const spec = request.spec as pb.ServiceSpec;
  let located: LocatedDefinition | undefined;
  let unreadable: string | undefined;
  try {
    located = await fleet.definition(spec.name);
  } catch (err) {
    // A broken definition file does not stop a deploy that brings its own spec.
    unreadable = toMcpError(err).message;
  }
  const node = fleet.writeNode(spec.name, explicitNode, located);
  const file = located?.file ?? definitionPath(fleet.config.servicesDir, spec.name);
  const after = async (answered: NodeConfig, response: unknown): Promise<string[]> => {
    const result = response as pb.DeployResult | undefined;
    if (!result || result.components.some((c) => !c.ok)) return [`definition not written: the deploy failed`];
    if (unreadable !== undefined) return [`definition not written: ${unreadable}`];
    if (located && located.definition.node !== answered.name) {
      return [
        `definition not written: ${located.file} puts "${spec.name}" on node ${located.definition.node}, not ${answered.name}; change node there to move the service`,
      ];
    }
    try {
      const done = await updateDefinition(file, specToDefinition(spec, answered.name));
      const how = done === 'rewritten' ? ' (rewritten whole: its comments were not kept)' : '';
      return [done === 'unchanged' ? `definition unchanged: ${file}` : `definition written: ${file}${how}`];
    } catch (err) {
      return [`could not write the definition ${file}: ${toMcpError(err).message}`];
    }
  };
  return { node, request, notes: secretEnvWarnings(spec, 'spec'), after };
}

/**
 * How the definition differs from what the node recorded for the service, in one line; none
 * when they agree, the node has no record, or the read fails (the deploy goes on regardless).
 * Compares the component set and images: the fields the registry reports back.
 */
async function recordedDifference(
  agent: AgentConnection,
  settings: CallSettings,
  definition: ServiceDefinition,
): Promise<string[]> {
  let recorded: pb.GetServiceStatusResponse;
  try {
    const codecs = toolCodecs.service_status;
    recorded = await agent.unary(
      codecs,
      { service: definition.name, eventLimit: 1 },
      {
        ...settings,
        readOnly: true,
        tool: 'service_status',
        timeoutSeconds: Math.min(settings.timeoutSeconds, 10),
      },
    );
  } catch {
    return [];
  }
  const components = recorded.service?.components ?? [];
  if (components.length === 0) return [];
  const recordedImage = new Map(components.map((c) => [c.name, c.image]));
  const declared = new Set(definition.components.map((c) => c.name));
  const changes: string[] = [];
  for (const c of definition.components) {
    const image = recordedImage.get(c.name);
    if (image === undefined) changes.push(`${c.name}: added (${c.image})`);
    else if (image !== c.image) changes.push(`${c.name}: image ${image} → ${c.image}`);
  }
  for (const c of components) if (!declared.has(c.name)) changes.push(`${c.name}: removed`);
  if (changes.length === 0) return [];
  return [
    `the definition file differs from what ${agent.node.name} recorded; the file wins: ${changes.join('; ')}`,
  ];
}

/** A request on one service (and optionally one of its components). */
interface ServiceRequest {
  service: string;
  component?: string;
}

/**
 * stop, start, restart and adopt: one service on one node, found from its definition.
 * With `setsActive`, a call on the whole service also writes `active` into that definition
 * when it names the node that answered.
 */
export function serviceDefinition(setsActive?: boolean) {
  return async <Req extends ServiceRequest>(
    request: Req,
    explicitNode: string | undefined,
    fleet: Fleet,
  ): Promise<PreparedWrite<Req>> => {
    const flipsActive = setsActive !== undefined && !request.component;
    const located =
      explicitNode === undefined || flipsActive ? await fleet.definition(request.service) : undefined;
    const node = fleet.writeNode(request.service, explicitNode, located);
    const after =
      flipsActive && located && located.definition.node === node.name
        ? async (): Promise<string[]> => {
            try {
              await setDefinitionActive(located.file, setsActive);
              return [`${located.file}: active = ${setsActive}`];
            } catch (err) {
              return [`could not set active = ${setsActive} in ${located.file}: ${toMcpError(err).message}`];
            }
          }
        : undefined;
    return { node, request, notes: [], after };
  };
}

/**
 * remove_service: the node its definition names (or `node`, or the only one). With
 * `deleteDefinition`, the definition file goes too once that node has removed the service.
 */
export const serviceRemoval: WriteTarget<pb.RemoveServiceRequest> = async (request, explicitNode, fleet) => {
  const located = await fleet.definition(request.service);
  const node = fleet.writeNode(request.service, explicitNode, located);
  const after = async (answered: NodeConfig): Promise<string[]> => {
    if (!request.deleteDefinition) {
      return located ? [`${located.file} kept: pass deleteDefinition to delete it too`] : [];
    }
    if (!located) return [`no definition file for "${request.service}" in ${fleet.config.servicesDir}`];
    if (located.definition.node !== answered.name) {
      return [
        `${located.file} kept: it puts "${request.service}" on node ${located.definition.node}, not ${answered.name}`,
      ];
    }
    try {
      await deleteDefinition(located.file);
      return [`deleted ${located.file}`];
    } catch (err) {
      return [`could not delete ${located.file}: ${toMcpError(err).message}`];
    }
  };
  return { node, request, notes: [], after };
};

/**
 * sync_desired_state. With `services`: the one node all of them are defined on, unless `node`
 * says otherwise. Without: every definition file, grouped by the node it names, one sync per
 * node (only `node`'s with `node`).
 */
export const servicesDefinitions: WriteTarget<pb.SyncDesiredStateRequest> = async (
  request,
  explicitNode,
  fleet,
) => {
  if (request.services.length === 0) return fromDefinitionFiles(request, explicitNode, fleet);
  const warnings = request.services.flatMap((spec) => secretEnvWarnings(spec, 'services'));
  if (explicitNode !== undefined) return { node: fleet.node(explicitNode), request, notes: warnings };
  const names = request.services.map((s) => s.name);
  const byNode = new Map<string, string[]>();
  for (const name of names) {
    const located = await fleet.definition(name);
    if (!located) continue;
    byNode.set(located.definition.node, [...(byNode.get(located.definition.node) ?? []), name]);
  }
  if (byNode.size > 1) {
    const groups = [...byNode].map(([node, services]) => `${node} (${services.join(', ')})`).join('; ');
    throw new InvalidArgumentError(
      `sync_desired_state: these services are defined on different nodes: ${groups}. Sync one node at a time: call again with \`node\` and that node's services, or leave out \`services\` to sync every definition file on its node`,
    );
  }
  const [definedOn] = byNode.keys();
  const node =
    definedOn !== undefined ? fleet.node(definedOn) : fleet.onlyNode(`the services ${names.join(', ')}`);
  return { node, request, notes: warnings };
};

async function fromDefinitionFiles(
  request: pb.SyncDesiredStateRequest,
  explicitNode: string | undefined,
  fleet: Fleet,
): Promise<PreparedWrite<pb.SyncDesiredStateRequest>[]> {
  const { servicesDir } = fleet.config;
  const definitions = await loadDefinitions(servicesDir);
  const byNode = new Map<string, pb.ServiceSpec[]>();
  for (const definition of definitions) {
    if (explicitNode !== undefined && definition.node !== explicitNode) continue;
    byNode.set(definition.node, [...(byNode.get(definition.node) ?? []), definitionToSpec(definition)]);
  }
  if (byNode.size === 0) {
    const where = explicitNode === undefined ? '' : ` for node ${explicitNode}`;
    throw new InvalidArgumentError(
      `sync_desired_state: no \`services\` given and no definition files${where} in ${servicesDir}: write one per service (name, node, [[components]] with name and image), or pass \`services\``,
    );
  }
  const configured = new Set(fleet.config.nodes.map((n) => n.name));
  const unknown = [...byNode].filter(([name]) => !configured.has(name));
  if (unknown.length > 0) {
    const list = unknown.map(([name, services]) => `${name} (${services.map((s) => s.name).join(', ')})`);
    throw new InvalidArgumentError(
      `sync_desired_state: definitions in ${servicesDir} name nodes that are not configured in ${fleet.config.configFile}: ${list.join('; ')}. Add them under [[nodes]] or fix the files; nothing was synced`,
    );
  }
  return [...byNode].map(([name, services]) => ({
    node: fleet.node(name),
    request: { ...request, services },
    notes: [
      `${name}: ${services.length} definition${services.length === 1 ? '' : 's'} from ${servicesDir}`,
      ...services.flatMap((spec) => secretEnvWarnings(spec, servicesDir)),
    ],
  }));
}
