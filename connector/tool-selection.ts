/**
 * Which of the contract's tools this connector publishes: all of them (every tool has its
 * binding in tool-bindings.ts, or the connector does not compile), narrowed by the operator's
 * safety switches (`--read-only`, `--tools`, `--disable-tools`). A tool that is not published
 * cannot be called.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { tools as allTools, type ToolDefinition } from '../gen/tool-catalog.js';

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
  const names = new Set<string>(contract.map((t) => t.name));
  const unknown = [...(switches.only ?? []), ...(switches.disable ?? [])].filter((n) => !names.has(n));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `unknown tool${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => `"${n}"`).join(', ')}: the tools are ${[...names].join(', ')}`,
    );
  }
  const only = switches.only && switches.only.length > 0 ? new Set(switches.only) : undefined;
  const disabled = new Set(switches.disable ?? []);
  const selected = contract.filter(
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
