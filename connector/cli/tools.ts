/**
 * `mcp tools` and `mcp call`: every tool the connector publishes, called by name with
 * key=value arguments. A value is read as the tool's input schema types its key: `content=123`
 * stays the text "123" where the schema says string, and only a number, boolean, array or
 * object field parses its value as such.
 */
import type { Command } from 'commander';
import { type ToolDefinition, type ToolName, tools } from '../../gen/tool-catalog.js';
import { type CliContext, UsageError } from './context.js';
import { printAnswer } from './lifecycle.js';

interface PropertySchema {
  type?: string | string[];
  description?: string;
}

function toolNamed(name: string): ToolDefinition {
  const tool = tools.find((t) => t.name === name);
  if (!tool) throw new UsageError(`unknown operation '${name}': run 'mcp tools' for the list`);
  return tool;
}

function properties(tool: ToolDefinition): Record<string, PropertySchema> {
  return (tool.inputSchema as { properties?: Record<string, PropertySchema> }).properties ?? {};
}

/** One value, read as the schema types its key. */
function typedValue(tool: ToolDefinition, key: string, text: string): unknown {
  const declared = properties(tool)[key]?.type;
  const types = declared === undefined ? [] : Array.isArray(declared) ? declared : [declared];
  // Text wherever text is allowed, and for keys the schema does not know (validation names them).
  if (types.length === 0 || types.includes('string')) return text;
  const wrong = (what: string, example: string) =>
    new UsageError(`${tool.name}: ${key}=${text}: ${key} takes ${what}, for example ${key}=${example}`);
  if (types.includes('integer') || types.includes('number')) {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || (!types.includes('number') && !Number.isInteger(n))) {
      throw wrong(types.includes('number') ? 'a number' : 'a whole number', '10');
    }
    return n;
  }
  if (types.includes('boolean')) {
    if (text === 'true') return true;
    if (text === 'false') return false;
    throw wrong('true or false', 'true');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw types.includes('array')
      ? wrong('a JSON array', '\'["a","b"]\'')
      : wrong('a JSON object', '\'{"name":"web"}\'');
  }
  return parsed;
}

/** key=value pairs as the tool's arguments. */
export function parseToolArguments(tool: ToolDefinition, pairs: readonly string[]): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`'${pair}' is not key=value: for example service=web`);
    const key = pair.slice(0, eq);
    args[key] = typedValue(tool, key, pair.slice(eq + 1));
  }
  return args;
}

function describeTool(tool: ToolDefinition): string {
  const required = new Set((tool.inputSchema as { required?: string[] }).required ?? []);
  const lines = Object.entries(properties(tool)).map(
    ([name, p]) =>
      `  ${name}${required.has(name) ? ' (required)' : ''} [${[p.type ?? 'any'].flat().join('|')}]: ${p.description ?? ''}`,
  );
  const a = tool.annotations;
  const traits = [
    a.readOnlyHint && 'read-only',
    a.destructiveHint && 'destructive',
    a.idempotentHint && 'idempotent',
  ]
    .filter(Boolean)
    .join(', ');
  return `${tool.name}: ${tool.title} (${traits || 'writes'}; permission ${tool.permission})\n\n${tool.description}\n\nArguments:\n${lines.join('\n')}\n`;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('tools')
    .description("the connector's tools, or one tool's arguments")
    .argument('[tool]', 'a tool to describe')
    .addHelpText(
      'after',
      `
Examples:
  mcp tools
  mcp tools push_file`,
    )
    .action((name: string | undefined, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      if (name !== undefined) {
        const tool = toolNamed(name);
        if (opts.json)
          return ctx.out.json({
            name: tool.name,
            title: tool.title,
            description: tool.description,
            inputSchema: tool.inputSchema,
          });
        return ctx.out.line(describeTool(tool));
      }
      if (opts.json) return ctx.out.json(tools.map((t) => ({ name: t.name, title: t.title })));
      ctx.out.line(
        ctx.out.table(
          ['tool', 'title', 'permission'],
          tools.map((t) => [t.name, t.title, t.permission]),
        ),
      );
    });

  program
    .command('call')
    .description('call any tool with key=value arguments (typed by its schema)')
    .argument('<tool>', "the tool's name (mcp tools lists them)")
    .argument('[arguments...]', 'key=value pairs')
    .addHelpText(
      'after',
      `
Values are typed by the tool's input schema: text where it takes a string, numbers, booleans,
and JSON arrays or objects only where it takes those. --node adds node=NODE.

Examples:
  mcp call list_services
  mcp call service_logs service=web tail=50
  mcp call push_file service=web path=motd content=123
  mcp call deploy 'spec={"name":"web","components":[{"name":"app","image":"bb:v1"}]}' --node node1`,
    )
    .action(async (name: string, pairs: string[], _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const tool = toolNamed(name);
      const args = parseToolArguments(tool, pairs);
      if (opts.node !== undefined) args.node ??= opts.node;
      const answer = await ctx.withSession(opts, (s) =>
        s.call(tool.name as ToolName, args, {
          onProgress: (p) => {
            if (!opts.json && p.message) ctx.out.note(p.message);
          },
        }),
      );
      printAnswer(ctx, opts, answer);
    });
}
