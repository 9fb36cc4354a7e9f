/**
 * A read-only tool called in-process without an MCP session: how the `mcp` CLI reads (list,
 * ps, status, logs, ...). The steps are the MCP server's tools/call (mcp-server.ts): the
 * arguments checked by the same validator, routed by the same router, answered with the same
 * result (tool-result.ts). A read asks no human and the CLI takes no progress for it, so no
 * part of the MCP session is missing; writes go through the session. It spares a read the MCP
 * SDKs, which take most of the CLI's start.
 */
import type { CallToolResult } from '@modelcontextprotocol/server';
import { toMcpError } from '../core/errors.js';
import type { ToolDefinition } from '../gen/tool-catalog.js';
import { withoutDigest } from './confirm.js';
import type { ConnectorCore } from './connector.js';
import { errorResult, invalidArguments, toolResult } from './tool-result.js';

/** True for the calls `callReadTool` answers: read-only tools, no progress wanted. */
export function isDirectRead(tool: ToolDefinition, wantsProgress: boolean): boolean {
  return tool.annotations.readOnlyHint && !wantsProgress;
}

export async function callReadTool(
  connector: ConnectorCore,
  tool: ToolDefinition,
  args: Record<string, unknown> | undefined,
): Promise<CallToolResult> {
  if (!tool.annotations.readOnlyHint) {
    throw new Error(`${tool.name} is not read-only: call it through an MCP session`);
  }
  const { router, bearerFor, log } = connector.toolsOptions;
  const call = await import('./tool-call-modules.js');
  const check = new call.ArgumentValidator([tool]).check(tool.name, args);
  if (!check.ok) return invalidArguments(tool.name, check.problems);
  try {
    const routed = await router.call(tool, withoutDigest(check.args), {
      bearer: () => bearerFor(undefined),
      signal: new AbortController().signal,
    });
    return toolResult(tool, routed, call);
  } catch (err) {
    const e = toMcpError(err);
    log[e.code === 'INTERNAL' ? 'error' : 'info']('tool call failed', {
      tool: tool.name,
      code: e.code,
      error: e.message,
    });
    return errorResult(call.errorText(e));
  }
}
