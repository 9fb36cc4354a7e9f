/**
 * A human's yes before a destructive change. The connector asks the agent for the write's
 * plan (`dryRun`), and when the plan would change something that runs (a running container
 * replaced, stopped, restarted or removed, a running service's definition changed, a file
 * overwritten) it asks the human through MCP elicitation, showing the plan in a few lines.
 * On a yes it executes exactly that plan (`planDigest`): the agent refuses when the node
 * changed in the meantime, and the connector plans and asks again, at most twice more.
 *
 * Nothing the model sends counts as a confirmation: a `planDigest` in the arguments is dropped,
 * and only the answer to the connector's own question sets one. The answer reaches the agent's
 * audit record as `mcp-confirmation` metadata (core/plans.ts); a decline is recorded by a
 * second dry run carrying it, so the audit log shows the question was asked and refused.
 *
 * This file holds the decision and `confirmPlan`, the CLI's hook (a terminal question in place
 * of elicitation); it imports no MCP SDK, so the CLI and the config stay light. The MCP side
 * is connector/confirm-elicitation.ts.
 */
import { FailedPreconditionError, McpError, toMcpError } from '../core/errors.js';
import { confirmationText, STALE_PLAN_MESSAGE } from '../core/plans.js';
import type { Plan, PlannedChange } from '../gen/mcp/v1/mcp.js';
import type { ToolName } from '../tools.generated.js';
import type { RoutedCall, ToolArguments } from './routing.js';

/**
 * The tools that ask by default: every destructive one. `adopt_containers` is not among them:
 * it records containers as they run and restarts nothing. A new write tool joins by its name
 * here (and in `[confirm] tools` of a config that lists its own).
 */
export const DEFAULT_CONFIRM_TOOLS: readonly ToolName[] = [
  'deploy',
  'stop_service',
  'restart_service',
  'sync_desired_state',
  'remove_service',
  'push_file',
  'rollback_service',
];

/** The writes that take `dryRun` and `planDigest`, and so can be planned and confirmed. */
export const PLANNED_TOOLS: ReadonlySet<ToolName> = new Set<ToolName>([
  ...DEFAULT_CONFIRM_TOOLS,
  'start_service',
  'adopt_containers',
]);

/** `[confirm]` of the connector config. */
export interface ConfirmSettings {
  /** Tools whose plans a human confirms. */
  tools: ReadonlySet<string>;
  /** When the client cannot ask its human (no elicitation capability): refuse the call, or let it run unconfirmed. */
  whenClientCannotAsk: 'refuse' | 'allow';
}

export const DEFAULT_CONFIRM_SETTINGS: ConfirmSettings = {
  tools: new Set(DEFAULT_CONFIRM_TOOLS),
  whenClientCannotAsk: 'refuse',
};

/** Plans and questions per call: the first, then at most twice more when the node changed. */
export const MAX_QUESTIONS = 3;

/** Who asked, in the audit record. */
export const CONNECTOR_ASKER = 'mcp-connector';

/** Runs the tool call with these arguments, carrying a human's answer to the agent when there is one. */
export type ExecuteCall = (args: ToolArguments, confirmation?: string) => Promise<RoutedCall>;

/** A change that needs a human: something that runs would change, or a file would be overwritten. */
export function needsQuestion(plan: Plan): boolean {
  return plan.changes.some(
    (c) => c.action === 'overwrite' || (c.action !== 'none' && c.action !== 'create' && c.running),
  );
}

function changeLine(c: PlannedChange): string {
  const parts = [`${c.action} ${c.component}`];
  if (c.container && c.container !== c.component)
    parts.push(`(${c.container}${c.running ? ', running' : ''})`);
  else if (c.running) parts.push('(running)');
  if (c.imageAfter && c.imageAfter !== c.imageBefore)
    parts.push(c.imageBefore ? `${c.imageBefore} → ${c.imageAfter}` : c.imageAfter);
  if (c.ports.length > 0) parts.push(`ports ${c.ports.join(' ')}`);
  if (c.volumes.length > 0) parts.push(`volumes ${c.volumes.join(' ')}`);
  if (c.envKeys.length > 0) parts.push(`env ${c.envKeys.join(' ')}`);
  if (c.fileSha256) parts.push(`replaces ${c.fileSize} bytes, sha256 ${c.fileSha256.slice(0, 12)}`);
  return `- ${parts.join(' ')}`;
}

/** The plan in a few lines, as the human sees it. */
export function planText(tool: string, node: string, plan: Plan): string {
  const changes = plan.changes.filter((c) => c.action !== 'none');
  const lines = [`${tool} on ${node}: ${changes.length === 0 ? 'no change' : `${changes.length} change(s)`}`];
  lines.push(...changes.slice(0, 12).map(changeLine));
  if (changes.length > 12) lines.push(`- and ${changes.length - 12} more`);
  lines.push(`plan ${plan.digest.slice(0, 12)}`);
  return lines.join('\n');
}

/** The plan a routed dry run answered with, and the node it is for. */
export function plannedOf(routed: RoutedCall): { node: string; plan: Plan } | undefined {
  const [answer] = routed.answers;
  const plan = (answer?.response as { plan?: Plan } | undefined)?.plan;
  return answer && plan ? { node: answer.node, plan } : undefined;
}

export function isStale(err: unknown): boolean {
  const e = toMcpError(err);
  return e.code === 'FAILED_PRECONDITION' && e.message.includes(STALE_PLAN_MESSAGE);
}

export function withoutDigest(args: ToolArguments): ToolArguments {
  const { planDigest: _ignored, ...rest } = args;
  return rest;
}

export function declined(tool: string, answer: string): McpError {
  return new McpError(
    'ABORTED',
    `the human ${answer} the plan, so ${tool} was not run and nothing changed: ask them what to change, or leave it`,
  );
}

export function keptChanging(tool: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `the node changed between each of ${MAX_QUESTIONS} plans of ${tool} and the human's answer, so nothing was run: check service_status, then try again`,
  );
}

export function planless(tool: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `${tool} needs a human's confirmation, but its plan covers several nodes: pass \`node\` to confirm one node at a time`,
  );
}

export function cannotAsk(tool: string, configFile: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `${tool} would change something that runs and needs a human's yes, but this MCP client cannot ask (it declared no elicitation capability): ` +
      `use a client that supports elicitation, call with dryRun to see the plan, or set \`[confirm] when_client_cannot_ask = "allow"\` in ${configFile} for a trusted local setup`,
  );
}

/** The question a human answers: the plan, and where it applies. */
export interface PlanQuestion {
  tool: string;
  node: string;
  plan: Plan;
  /** The plan in a few lines (planText). */
  text: string;
}

/** A way to ask a human: a terminal question in the CLI. `accept` means yes to exactly this plan. */
export type PlanPrompt = (question: PlanQuestion) => Promise<'accept' | 'decline' | 'cancel'>;

export interface ConfirmPlanOptions {
  tool: ToolName;
  args: ToolArguments;
  settings: ConfirmSettings;
  /** Undefined when there is nobody to ask (a CLI without a terminal). */
  prompt: PlanPrompt | undefined;
  /** Who asks, for the audit record (e.g. `mcp-cli`). */
  asker: string;
  /** The config file named when the call is refused. */
  configFile: string;
  execute: ExecuteCall;
}

/**
 * The CLI's hook: plans the call, asks `prompt` when the plan needs a human, executes exactly
 * the plan accepted, and plans and asks again when the node changed (at most MAX_QUESTIONS).
 * Declined → ABORTED, recorded in the audit log; nobody to ask → refused, unless
 * `whenClientCannotAsk` is `allow`. A `--yes` is a prompt that accepts.
 */
export async function confirmPlan(options: ConfirmPlanOptions): Promise<RoutedCall> {
  const { tool, settings, prompt, asker, execute } = options;
  const args = withoutDigest(options.args);
  if (!PLANNED_TOOLS.has(tool) || args.dryRun === true || !settings.tools.has(tool)) return execute(args);
  for (let asked = 0; asked < MAX_QUESTIONS; asked += 1) {
    const planned = plannedOf(await execute({ ...args, dryRun: true }));
    if (!planned?.plan.digest) throw planless(tool);
    const { node, plan } = planned;
    let confirmation: string | undefined;
    if (needsQuestion(plan)) {
      if (!prompt) {
        if (settings.whenClientCannotAsk === 'allow') return execute(args);
        throw cannotAsk(tool, options.configFile);
      }
      const answer = await prompt({ tool, node, plan, text: planText(tool, node, plan) });
      if (answer !== 'accept') {
        await execute({ ...args, dryRun: true }, confirmationText('declined', plan.digest, asker));
        throw declined(tool, answer === 'cancel' ? 'cancelled' : 'declined');
      }
      confirmation = confirmationText('accepted', plan.digest, asker);
    }
    try {
      return await execute({ ...args, planDigest: plan.digest }, confirmation);
    } catch (err) {
      if (!isStale(err)) throw err;
    }
  }
  throw keptChanging(tool);
}
