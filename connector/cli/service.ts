/**
 * `mcp service show|edit|export`: a service's definition file, the declared intent. Without a
 * file, the spec is built from what a node's registry reports (names, images and `active`;
 * the registry does not report ports, volumes, cmd or env back), so an exported or edited
 * file of such a service should be checked before it is deployed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { FailedPreconditionError, McpError, NotFoundError, toMcpError } from '../../core/errors.js';
import type { ServiceDefinition } from '../definitions.js';
import type { CliContext, GlobalOptions, NodeEntry } from './context.js';
import { codecs, definitionFiles } from './lazy.js';
import { nodeArg } from './lifecycle.js';

/** A definition and where it came from. */
interface FoundDefinition {
  definition: ServiceDefinition;
  /** The definition file's text, when there is a file. */
  text?: string;
  from: string;
}

/** The definition file, else a definition made from the first node's record of the service. */
async function findDefinition(
  ctx: CliContext,
  opts: GlobalOptions,
  service: string,
): Promise<FoundDefinition> {
  const [pb, { definitionPath, locateDefinition }] = await Promise.all([codecs(), definitionFiles()]);
  const located = await locateDefinition(await ctx.servicesDir(opts), service);
  if (located) {
    return { definition: located.definition, text: readFileSync(located.file, 'utf8'), from: located.file };
  }
  return ctx.withSession(opts, async (session) => {
    const { result } = await session.call('service_status', { service, eventLimit: 1, ...nodeArg(opts) });
    for (const entry of (result.nodes ?? []) as NodeEntry[]) {
      const info = entry.result && pb.GetServiceStatusResponse.fromJSON(entry.result).service;
      if (!info) continue;
      const definition: ServiceDefinition = {
        name: info.name,
        node: entry.node,
        active: info.active,
        components: info.components.map((c) =>
          pb.ComponentSpec.fromPartial({ name: c.name, image: c.image }),
        ),
      };
      return { definition, from: `the registry of node ${entry.node}` };
    }
    throw new NotFoundError(
      `service "${service}" has no definition file and no node has it in its registry: write ${definitionPath(await ctx.servicesDir(opts), service)}, or deploy it first`,
    );
  });
}

/** What an edited file's header says about where the text came from and why it was reopened. */
function editHeader(from: string, problem?: string): string {
  const lines = [
    `# Editing the definition of this service (from ${from}).`,
    '# Lines starting with # are kept; save and quit to apply, or quit without changes to cancel.',
  ];
  if (problem) {
    lines.push('#', '# The last save did not validate:');
    for (const line of problem.split('\n')) lines.push(`#   ${line}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Drops the header this command added, so it never lands in the definition file. */
function withoutHeader(text: string): string {
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length && isHeaderLine(lines[i] ?? '')) i += 1;
  return lines.slice(i).join('\n');
}

function isHeaderLine(line: string): boolean {
  return (
    line.startsWith('# Editing the definition') ||
    line.startsWith('# Lines starting with #') ||
    line === '#' ||
    line.startsWith('# The last save') ||
    line.startsWith('#   ')
  );
}

/**
 * Runs the editor on `file` and waits. $VISUAL, else $EDITOR, else vi, run through `sh -c` as
 * git and kubectl do, because the variable may hold arguments (`code --wait`); the file name
 * is passed as "$1", never spliced into the command text.
 */
function runEditor(file: string): void {
  const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
  const run = spawnSync('sh', ['-c', `${editor} "$1"`, 'mcp-editor', file], { stdio: 'inherit' });
  if (run.error || run.status !== 0) {
    throw new FailedPreconditionError(
      `the editor (${editor}) ${run.error ? `did not start: ${run.error.message}` : `exited with ${run.status ?? run.signal}`}: nothing was saved; set $EDITOR to an editor that exits 0`,
    );
  }
}

export function register(program: Command, ctx: CliContext): void {
  const service = program
    .command('service')
    .description("a service's definition file: show, edit, export")
    .addHelpText(
      'after',
      `
Examples:
  mcp service show web
  EDITOR=nano mcp service edit web
  mcp service export web -o web.toml && mcp deploy web -f web.toml`,
    );

  service
    .command('show')
    .description("the service's definition (its file, else what a node recorded)")
    .argument('<service>', 'the service')
    .action(async (name: string, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const found = await findDefinition(ctx, opts, name);
      const [pb, { definitionToSpec, formatDefinition }] = await Promise.all([codecs(), definitionFiles()]);
      if (opts.json) {
        return ctx.out.json({
          from: found.from,
          node: found.definition.node,
          spec: pb.ServiceSpec.toJSON(definitionToSpec(found.definition)),
        });
      }
      ctx.out.line(ctx.out.paint('dim', `# from ${found.from}`));
      process.stdout.write(found.text ?? formatDefinition(found.definition));
    });

  service
    .command('export')
    .description('the definition as TOML that loads back (for deploy -f), to stdout or a file')
    .argument('<service>', 'the service')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (name: string, options: { output?: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const found = await findDefinition(ctx, opts, name);
      const { formatDefinition } = await definitionFiles();
      const text = formatDefinition(found.definition);
      if (options.output === undefined) {
        if (opts.json) return ctx.out.json({ from: found.from, toml: text });
        process.stdout.write(text);
        return;
      }
      writeFileSync(resolve(options.output), text, { mode: 0o600 });
      if (opts.json) return ctx.out.json({ from: found.from, file: resolve(options.output) });
      ctx.out.line(`exported ${name} (from ${found.from}) to ${resolve(options.output)}`);
    });

  service
    .command('edit')
    .description('open $EDITOR on the definition file; reopens until it validates')
    .argument('<service>', 'the service')
    .addHelpText(
      'after',
      `
Without a definition file, the file is first made from what a node recorded. A save that
does not validate reopens the editor with the problems at the top; saving it unchanged
cancels. The edit is not deployed: run mcp deploy SERVICE afterwards.`,
    )
    .action(async (name: string, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const found = await findDefinition(ctx, opts, name);
      const { definitionPath, formatDefinition, parseDefinition } = await definitionFiles();
      const file = definitionPath(await ctx.servicesDir(opts), name);
      const dir = mkdtempSync(join(tmpdir(), 'mcp-edit-'));
      const scratch = join(dir, `${name}.toml`);
      try {
        let body = found.text ?? formatDefinition(found.definition);
        let problem: string | undefined;
        for (;;) {
          const shown = editHeader(found.from, problem) + body;
          writeFileSync(scratch, shown, { mode: 0o600 });
          runEditor(scratch);
          const saved = readFileSync(scratch, 'utf8');
          if (saved === shown) {
            if (opts.json) return ctx.out.json({ file, changed: false });
            ctx.out.line(`no change: ${file} left as it was`);
            return;
          }
          body = withoutHeader(saved);
          try {
            const definition = parseDefinition(body, file);
            if (definition.name !== name) {
              throw new McpError(
                'INVALID_ARGUMENT',
                `name is "${definition.name}", but this is the definition of "${name}": keep the name`,
              );
            }
            break;
          } catch (err) {
            problem = toMcpError(err).message;
            ctx.out.warn(`${file}: does not validate, reopening the editor:\n${problem}`);
          }
        }
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
        writeFileSync(file, body, { mode: 0o600 });
        if (opts.json) return ctx.out.json({ file, changed: true });
        ctx.out.line(`saved ${file}; apply it with: mcp deploy ${name}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
}
