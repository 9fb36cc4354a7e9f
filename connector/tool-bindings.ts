/**
 * One entry per tool: how the connector serves it. The generated table (tools.generated.ts)
 * says what a tool is (name, schemas, RPC, codecs); this one says how its call is routed,
 * how its output comes out of the RPC, how its progress is reported and how its answers
 * read as text. It is a `Record` over the generated `ToolName`, so an RPC published as a
 * tool without a binding here does not compile.
 */
import type * as pb from '../gen/mcp/v1/mcp.js';
import type { ToolCodecs, ToolName, ToolOutput, ToolRequest, ToolResponse } from '../tools.generated.js';
import type { AgentConnection, CallSettings } from './agent-client.js';
import { type LocalDirectory, pullFile, pushFile, type TransferProgress } from './file-transfer.js';
import {
  type Answered,
  adoptText,
  auditText,
  componentResultsText,
  errorText,
  type Formatter,
  liveCheckText,
  logsText,
  nodeStatusText,
  pulledText,
  pushedText,
  removeText,
  serviceStatusText,
  servicesText,
  syncText,
  updatesText,
} from './format.js';
import type { NodeAnswer } from './routing.js';
import {
  deploySpec,
  serviceDefinition,
  serviceRemoval,
  servicesDefinitions,
  type WriteTarget,
} from './write-targets.js';

/** Every node at once when no `node` is given (the tool's `fan_out` in the contract). */
export interface FanOutRoute {
  readonly strategy: 'fanOutRead';
}

/**
 * One node, found by the write target, with a request id. A target may name several nodes
 * (sync from the definition files): then `merge` joins their answers into the one result.
 */
export interface WriteRoute<T extends ToolName> {
  readonly strategy: 'singleNodeWrite';
  readonly target: WriteTarget<ToolRequest<T>>;
  readonly merge?: (answers: readonly NodeAnswer<ToolOutput<T>>[]) => ToolOutput<T>;
}

/** What a file transfer is handed. */
export interface Transfer<T extends ToolName> {
  readonly agent: AgentConnection;
  readonly codecs: ToolCodecs<T>;
  readonly fields: Record<string, unknown>;
  readonly settings: CallSettings;
  readonly local: LocalDirectory;
  readonly inlineMaxBytes: number;
  readonly onTransfer: TransferProgress | undefined;
}

/** One file streamed to or from the node that runs its service. */
export interface FileTransferRoute<T extends ToolName> {
  readonly strategy: 'fileTransfer';
  readonly transfer: (transfer: Transfer<T>) => Promise<ToolOutput<T>>;
}

export type Route<T extends ToolName> = FanOutRoute | WriteRoute<T> | FileTransferRoute<T>;

/**
 * How the tool's output (its `tool_output`, else its RPC's response) comes out of the RPC:
 * the response itself; picked from a server stream, whose other messages are progress; or
 * assembled by the file transfer.
 */
export type OutputHandling<T extends ToolName> =
  | { readonly from: 'response'; toOutput(response: ToolResponse<T>): ToolOutput<T> }
  | {
      readonly from: 'stream';
      collect(message: ToolResponse<T>): { progress?: pb.DeployProgress; output?: ToolOutput<T> };
    }
  | { readonly from: 'fileTransfer' };

/**
 * MCP progress, which must increase with every notification: components completed, plus how
 * far the current step is into its component.
 */
export interface ProgressModel {
  readonly stepFraction: Readonly<Record<string, number>>;
}

export interface ToolBinding<T extends ToolName> {
  readonly route: Route<T>;
  readonly output: OutputHandling<T>;
  readonly format: Formatter<ToolOutput<T>>;
  readonly progress?: ProgressModel;
}

const fanOutRead: FanOutRoute = { strategy: 'fanOutRead' };
const singleNodeWrite = <T extends ToolName>(
  target: WriteTarget<ToolRequest<T>>,
  merge?: WriteRoute<T>['merge'],
): WriteRoute<T> => ({ strategy: 'singleNodeWrite', target, ...(merge ? { merge } : {}) });
/** The RPC's response is the tool's output. */
const response = { from: 'response', toOutput: <R>(r: R): R => r } as const;
const fileTransfer = { from: 'fileTransfer' } as const;

/** rollback_service goes where the service's writes go; its note says what the node did not change. */
const rollbackTarget: WriteTarget<pb.RollbackServiceRequest> = async (request, explicitNode, fleet) => {
  const prepared = await serviceDefinition()(request, explicitNode, fleet);
  const note =
    'the definition file is not changed: a deploy by name deploys what it says again; set its image to the one rolled back to, to keep it';
  return { ...prepared, notes: [...prepared.notes, note] };
};

export const toolBindings: { readonly [T in ToolName]: ToolBinding<T> } = {
  deploy: {
    route: singleNodeWrite(deploySpec),
    output: {
      from: 'stream',
      collect: (message) => ({ progress: message.progress, output: message.result }),
    },
    format: componentResultsText('deployed'),
    // How far through its deploy step a component is.
    progress: { stepFraction: { pull: 0.2, stop: 0.4, remove: 0.6, keep: 0.6, run: 0.8, inspect: 0.9 } },
  },
  // Redeploys the node's previous definition: the definition file is not the source, so the
  // node comes from it (or is the only one) and nothing is sent but the name.
  rollback_service: {
    route: singleNodeWrite(rollbackTarget),
    output: response,
    format: componentResultsText('rolled back'),
  },
  stop_service: {
    route: singleNodeWrite(serviceDefinition(false)),
    output: response,
    format: componentResultsText('stopped'),
  },
  start_service: {
    route: singleNodeWrite(serviceDefinition(true)),
    output: response,
    format: componentResultsText('started'),
  },
  restart_service: {
    route: singleNodeWrite(serviceDefinition()),
    output: response,
    format: componentResultsText('restarted'),
  },
  adopt_containers: { route: singleNodeWrite(serviceDefinition()), output: response, format: adoptText },
  sync_desired_state: {
    route: singleNodeWrite(servicesDefinitions, mergeSyncs),
    output: { from: 'response', toOutput: (r) => ({ ...r, byNode: [] }) },
    format: syncText,
  },
  remove_service: { route: singleNodeWrite(serviceRemoval), output: response, format: removeText },
  // A read of one service, on the node its definition names: routed like a write (no fan-out).
  service_logs: { route: singleNodeWrite(serviceDefinition()), output: response, format: logsText },
  list_services: { route: fanOutRead, output: response, format: servicesText },
  live_check: { route: fanOutRead, output: response, format: liveCheckText },
  service_status: { route: fanOutRead, output: response, format: serviceStatusText },
  node_status: { route: fanOutRead, output: response, format: nodeStatusText },
  query_audit: { route: fanOutRead, output: response, format: auditText },
  check_updates: { route: fanOutRead, output: response, format: updatesText },
  push_file: {
    route: {
      strategy: 'fileTransfer',
      transfer: (t) => pushFile(t.agent, t.codecs, t.fields, t.settings, t.local, t.onTransfer),
    },
    output: fileTransfer,
    format: pushedText,
  },
  pull_file: {
    route: {
      strategy: 'fileTransfer',
      transfer: (t) =>
        pullFile(t.agent, t.codecs, t.fields, t.settings, t.local, t.inlineMaxBytes, t.onTransfer),
    },
    output: fileTransfer,
    format: pulledText,
  },
};

/** The syncs of every node asked, as one result; a node that failed says why in its entry. */
function mergeSyncs(
  answers: readonly NodeAnswer<pb.SyncDesiredStateToolOutput>[],
): pb.SyncDesiredStateToolOutput {
  const answered = answers.flatMap((a) => (a.response ? [a.response] : []));
  return {
    services: answered.flatMap((r) => r.services),
    ignored: answered.flatMap((r) => r.ignored),
    replayed: answered.length > 0 && answered.every((r) => r.replayed),
    byNode: answers.map((a) => ({
      node: a.node,
      services: a.response?.services.map((s) => s.service) ?? [],
      ignored: a.response?.ignored ?? [],
      error: a.error ? errorText(a.error) : '',
    })),
    // One node's plan is that node's; the plans of several have no one digest to confirm.
    plan:
      answered.length === 1
        ? answered[0]?.plan
        : { changes: answered.flatMap((r) => r.plan?.changes ?? []), digest: '' },
  };
}

/** The text of a routed call: the tool's formatter over the nodes that answered, then per-node errors and notes. */
export function formatAnswers<T extends ToolName>(
  tool: T,
  answers: readonly NodeAnswer<ToolOutput<T>>[],
  notes: readonly string[],
): string {
  const ok = answers.flatMap((a): Answered<ToolOutput<T>>[] =>
    a.response !== undefined ? [{ node: a.node, response: a.response }] : [],
  );
  const sections: string[] = [];
  if (ok.length > 0) sections.push(toolBindings[tool].format(ok));
  for (const a of answers) if (a.error) sections.push(`${a.node}: ${errorText(a.error)}`);
  sections.push(...notes);
  return sections.join('\n');
}
