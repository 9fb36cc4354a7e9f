/**
 * A tool call's answer as an MCP result, the same whoever asked: `structuredContent` in the
 * shape of the tool's output schema and a short table as text. Shared by the MCP server
 * (mcp-server.ts) and the `mcp` CLI's reads (read-call.ts); it imports no MCP SDK code.
 */
import type { CallToolResult } from '@modelcontextprotocol/server';
import type * as pb from '../gen/mcp/v1/mcp.js';
import type { ToolDefinition, ToolName, ToolOutput } from '../tools.generated.js';
import { plannedOf, planText } from './confirm.js';
import type { RoutedCall } from './routing.js';
import type * as ToolCallModules from './tool-call-modules.js';

/** What shaping a result needs of the modules loaded on the first tools/call. */
export type ResultModules = Pick<typeof ToolCallModules, 'toolCodecs' | 'formatAnswers'>;

/** structuredContent in the shape of the tool's output schema, and the text table. */
export function toolResult<T extends ToolName>(
  tool: ToolDefinition & { readonly name: T },
  routed: RoutedCall<ToolOutput<T>>,
  { toolCodecs, formatAnswers }: ResultModules,
): CallToolResult {
  const { output } = toolCodecs[tool.name];
  const shape = resultShape(tool);
  const json = (response: ToolOutput<T> | undefined) =>
    withZeroValues((response === undefined ? {} : output.toJSON(response)) as Record<string, unknown>, shape);
  let text = formatAnswers(tool.name, routed.answers, routed.notes);
  const planned = plannedOf(routed);
  if (planned) text = `${planText(tool.name, planned.node, planned.plan)}\n${text}`;
  if (routed.requestId) text += `\nrequest id: ${routed.requestId}`;
  if (tool.fanOut) {
    const nodes = routed.answers.map((a) =>
      a.error
        ? { node: a.node, error: { code: a.error.code, message: a.error.message } }
        : { node: a.node, result: json(a.response) },
    );
    // Some nodes answering is a result; none answering is an error, with the same entries.
    const isError = routed.answers.every((a) => a.error);
    return {
      content: [{ type: 'text', text }],
      structuredContent: { nodes },
      ...(isError ? { isError } : {}),
    };
  }
  const [answer] = routed.answers;
  // An operation that failed for any component is an error, with every component's result.
  const failed = failedComponents(answer?.response);
  if (failed.length > 0) {
    const lines = failed.map((c) => `${c.component}: ${c.error || 'failed'}`);
    text = `FAILED_PRECONDITION: ${tool.name} failed for ${failed.length} component${failed.length === 1 ? '' : 's'}: ${lines.join('; ')}\n\n${text}`;
  }
  return {
    content: [{ type: 'text', text }],
    structuredContent: { node: answer?.node, ...json(answer?.response) },
    ...(failed.length > 0 ? { isError: true } : {}),
  };
}

/** The published schema of one node's result: the tool's output, or a fan-out entry's `result`. */
function resultShape(tool: ToolDefinition): Record<string, { type?: unknown }> {
  type Obj = { properties?: Record<string, Obj>; items?: Obj; type?: unknown };
  const schema = tool.outputSchema as Obj;
  const result = tool.fanOut ? schema.properties?.nodes?.items?.properties?.result : schema;
  return result?.properties ?? {};
}

/**
 * ProtoJSON leaves out zero values, so an empty list read as `{}` and a node running nothing
 * had no `running`. Lists and counts of the result's top level are filled in: `services: []`,
 * `running: 0`.
 */
function withZeroValues(
  json: Record<string, unknown>,
  shape: Record<string, { type?: unknown }>,
): Record<string, unknown> {
  const filled = { ...json };
  for (const [name, schema] of Object.entries(shape)) {
    if (name === 'node' || filled[name] !== undefined) continue;
    if (schema.type === 'array') filled[name] = [];
    else if (schema.type === 'integer') filled[name] = 0;
  }
  return filled;
}

/** The answer to arguments that do not match the tool's input schema, each problem on a line. */
export function invalidArguments(tool: ToolName, problems: readonly string[]): CallToolResult {
  return errorResult(
    `INVALID_ARGUMENT: the arguments of ${tool} do not match its input schema:\n${problems.map((p) => `- ${p}`).join('\n')}`,
  );
}

export function errorResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

/** The component results of a response that failed (`ok: false`); none for other responses. */
function failedComponents(response: unknown): pb.ComponentResult[] {
  if (typeof response !== 'object' || response === null || !('components' in response)) return [];
  const { components } = response as { components: unknown };
  if (!Array.isArray(components)) return [];
  return components.filter(
    (c): c is pb.ComponentResult => typeof c === 'object' && c !== null && 'ok' in c && c.ok === false,
  );
}
