/**
 * Which of the contract's tools this connector publishes: all of them, less the ones it
 * cannot serve yet, narrowed by the operator's safety switches (`--read-only`, `--tools`,
 * `--disable-tools`). A tool that is not published cannot be called.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { tools as allTools, type ToolDefinition } from '../tools.generated.js';

/**
 * Tools in the contract that the connector does not publish yet, each with why. Empty now:
 * every RPC is served. Add a name here (with its reason) to hold a new tool back until the
 * agent and the connector both serve it end to end.
 */
export const UNAVAILABLE_TOOLS: ReadonlySet<string> = new Set<string>([]);

export interface ToolSwitches {
  /** Only tools whose annotations say readOnlyHint. */
  readOnly?: boolean;
  /** Only these tools. */
  only?: readonly string[];
  /** Not these tools. */
  disable?: readonly string[];
}

/** The published tools; an unknown name in a switch is an error listing the valid ones. */
export function selectTools(
  switches: ToolSwitches,
  contract: readonly ToolDefinition[] = allTools,
): ToolDefinition[] {
  const available = contract.filter((t) => !UNAVAILABLE_TOOLS.has(t.name));
  const names = new Set(available.map((t) => t.name));
  const unknown = [...(switches.only ?? []), ...(switches.disable ?? [])].filter((n) => !names.has(n));
  if (unknown.length > 0) {
    const later = unknown.filter((n) => UNAVAILABLE_TOOLS.has(n));
    const why =
      later.length > 0 ? ` (${later.join(', ')} ${later.length === 1 ? 'is' : 'are'} not available yet)` : '';
    throw new InvalidArgumentError(
      `unknown tool${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => `"${n}"`).join(', ')}${why}: the tools are ${[...names].join(', ')}`,
    );
  }
  const only = switches.only && switches.only.length > 0 ? new Set(switches.only) : undefined;
  const disabled = new Set(switches.disable ?? []);
  const selected = available.filter(
    (t) =>
      (!switches.readOnly || t.annotations.readOnlyHint) &&
      (!only || only.has(t.name)) &&
      !disabled.has(t.name),
  );
  if (selected.length === 0) {
    throw new InvalidArgumentError(
      'the switches leave no tool to publish: check --tools, --disable-tools and --read-only',
    );
  }
  return selected;
}
