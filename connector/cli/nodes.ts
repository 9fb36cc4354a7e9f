/**
 * `mcp node list | add | remove`: the `[[nodes]]` of the connector config. The file is the
 * operator's, comments and layout included, so it is edited as text: a block appended after
 * the last node, or one node's block cut out, never the whole file re-serialized. Every
 * result is parsed with the connector's own loader before it replaces the file (atomically,
 * keeping its mode), and `add` first makes sure the agent answers at that address.
 */
import { accessSync, constants } from 'node:fs';
import { chmod, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { McpError } from '../../core/errors.js';
import { checkName } from '../../core/spec.js';
import type { ConnectorConfig, NodeConfig } from '../config.js';
import type { CliContext, GlobalOptions } from './context.js';
import { UsageError } from './context.js';
import { connectorConfig } from './lazy.js';

/** How long `node add` waits for the agent to answer its check. */
const CHECK_TIMEOUT_SECONDS = 10;

/** A table header line: `[name]` or `[[name]]`, dotted or quoted keys, an optional comment. */
const TABLE_HEADER = /^\s*\[\[?\s*[A-Za-z0-9_.\-"' ]+\s*\]\]?\s*(#.*)?$/;
const NODES_HEADER = /^\s*\[\[\s*nodes\s*\]\]\s*(#.*)?$/;
const COMMENT = /^\s*#/;
const BLANK = /^\s*$/;

/** The config file as read: its text, and what the connector makes of it. */
interface ConfigText {
  file: string;
  text: string;
  config: ConnectorConfig;
}

export function register(program: Command, ctx: CliContext): void {
  const node = program
    .command('node')
    .description("the connector config's nodes: list, add, remove")
    .addHelpText(
      'after',
      `
The nodes are the [[nodes]] tables of the connector config (--config, $MCP_CONFIG, else
~/.config/mcp/connector.toml). add and remove edit that file in place, keeping its comments
(remove takes the comment lines directly above the node's table with it), and check the
result with the connector's own rules before writing. The local setup has one
node, local, and no config to edit.

Examples:
  mcp node list
  mcp node add edge-1 edge-1.example.net:7443 --ca-file ~/.config/mcp/fleet-ca.pem
  mcp node add lab 10.0.0.9:7443 --server-name lab.internal --no-check
  mcp node remove edge-1`,
    );

  node
    .command('list')
    .description('name, address, ca_file and server_name of every configured node')
    .action(async (_options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const source = await ctx.configSource(opts);
      if (source.localHome) {
        if (opts.json) return ctx.out.json([{ name: 'local' }]);
        ctx.out.note(`no connector config: the local setup in ${source.localHome} has one node, local`);
        ctx.out.line(
          ctx.out.table(['name', 'address', 'ca_file', 'server_name'], [['local', '-', '-', '-']]),
        );
        return;
      }
      const { config } = await readConfig(source.configFile);
      if (opts.json) {
        return ctx.out.json(
          config.nodes.map((n) => ({
            name: n.name,
            address: n.address,
            ...(n.caFile !== undefined ? { ca_file: n.caFile } : {}),
            ...(n.serverName !== undefined ? { server_name: n.serverName } : {}),
          })),
        );
      }
      if (config.nodes.length === 0) {
        ctx.out.note(`no [[nodes]] in ${config.configFile}: add one with mcp node add NAME HOST:PORT`);
        return;
      }
      ctx.out.line(
        ctx.out.table(
          ['name', 'address', 'ca_file', 'server_name'],
          config.nodes.map((n) => [n.name, n.address, n.caFile ?? '-', n.serverName ?? '-']),
        ),
      );
    });

  node
    .command('add')
    .description('append a [[nodes]] table to the connector config, once its agent answers there')
    .argument('<name>', 'the node name, as the agent knows itself (node_name)')
    .argument('<address>', "host:port of the node's agent")
    .option('--ca-file <file>', "CA bundle that signed the agent's certificate (default: the system's CAs)")
    .option('--server-name <name>', "TLS name on the agent's certificate, when it is not the address's host")
    .option('--no-check', 'write without first checking that the agent answers')
    .action(
      async (
        name: string,
        address: string,
        options: { caFile?: string; serverName?: string; check: boolean },
        cmd: Command,
      ) => {
        const opts = ctx.globals(cmd);
        const file = await configFileToEdit(ctx, opts, 'add');
        const problem = checkName(name);
        if (problem) throw new UsageError(`node name: ${problem}`);
        const current = await readConfig(file);
        if (current.config.nodes.some((n) => n.name === name)) {
          throw new UsageError(
            `node "${name}" is already in ${file}: choose another name, or mcp node remove ${name} first`,
          );
        }
        const caFile = options.caFile === undefined ? undefined : resolve(options.caFile);
        if (caFile !== undefined) {
          try {
            accessSync(caFile, constants.R_OK);
          } catch (err) {
            throw new UsageError(`--ca-file ${caFile} cannot be read: ${(err as Error).message}`);
          }
        }
        const entry: NodeConfig = { name, address, caFile, serverName: options.serverName };
        const text = withNodeAdded(current.text, entry);
        const next = await checkedConfig(text, file, `node ${name}`);

        let check: 'answered' | 'refused' | 'skipped' = 'skipped';
        if (options.check) {
          const added = next.nodes.find((n) => n.name === name) as NodeConfig;
          const refusal = await checkAgentAnswers(added, current.config);
          check = refusal === undefined ? 'answered' : 'refused';
          if (refusal !== undefined) {
            ctx.out.note(
              `the agent at ${address} answers, and refused the call (${refusal.code}: ${refusal.message}): adding it anyway; fix the token or its roles for calls to work`,
            );
          }
        }
        await writeAtomically(file, text);
        if (opts.json) return ctx.out.json({ node: name, address, config_file: file, check });
        const how = check === 'skipped' ? 'not checked (--no-check)' : 'its agent answered';
        ctx.out.line(`added node ${name} (${address}) to ${file}: ${how}`);
      },
    );

  node
    .command('remove')
    .description("cut a node's [[nodes]] table out of the connector config")
    .argument('<name>', 'the node to remove')
    .action(async (name: string, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const file = await configFileToEdit(ctx, opts, 'remove');
      const current = await readConfig(file);
      const index = current.config.nodes.findIndex((n) => n.name === name);
      if (index < 0) {
        const known = current.config.nodes.map((n) => n.name).join(', ') || '(none)';
        throw new UsageError(`unknown node "${name}": the nodes in ${file} are ${known}`);
      }
      const text = withNodeRemoved(current.text, index, current.config.nodes.length, file);
      const next = await checkedConfig(text, file, `without node ${name}`);
      if (next.nodes.some((n) => n.name === name) || next.nodes.length !== current.config.nodes.length - 1) {
        throw new McpError(
          'FAILED_PRECONDITION',
          `${file}: could not cut node "${name}" out of the text safely: remove its [[nodes]] table by hand`,
        );
      }
      await writeAtomically(file, text);
      if (opts.json) return ctx.out.json({ node: name, config_file: file, removed: true });
      ctx.out.line(`removed node ${name} from ${file}`);
    });
}

/** The config file `add`/`remove` edit; the local setup has none, and says so. */
async function configFileToEdit(ctx: CliContext, opts: GlobalOptions, verb: string): Promise<string> {
  const source = await ctx.configSource(opts);
  if (source.localHome) {
    throw new UsageError(
      `cannot ${verb} nodes in the local setup (${source.localHome}): it has one node, local. For a fleet, write a connector config (see deploy/examples/connector.toml) and name it with --config or $MCP_CONFIG`,
    );
  }
  return resolve(source.configFile);
}

async function readConfig(file: string): Promise<ConfigText> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot read the connector config: ${(err as Error).message}`);
  }
  return { file, text, config: (await connectorConfig()).parseConnectorConfig(text, file) };
}

/** The connector's reading of `text`; what it refuses is the operator's input, so exit 2. */
async function checkedConfig(text: string, file: string, what: string): Promise<ConnectorConfig> {
  const { parseConnectorConfig } = await connectorConfig();
  try {
    return parseConnectorConfig(text, file);
  } catch (err) {
    if (err instanceof McpError && err.code === 'INVALID_ARGUMENT') {
      throw new UsageError(
        `${what} would make the connector config invalid, so nothing was written:\n${err.message}`,
      );
    }
    throw err;
  }
}

/** A TOML basic string: JSON's escapes are all valid TOML escapes. */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** Lines, and the line ending the file already uses. */
function splitLines(text: string): { lines: string[]; eol: string } {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const body = text.endsWith(eol) ? text.slice(0, -eol.length) : text;
  return { lines: body === '' ? [] : body.split(eol), eol };
}

function joinLines(lines: readonly string[], eol: string): string {
  return lines.length === 0 ? '' : `${lines.join(eol)}${eol}`;
}

/** Where each `[[nodes]]` block starts and ends (exclusive); comments above the next header stay with it. */
function nodeBlocks(lines: readonly string[]): { start: number; end: number }[] {
  const blocks: { start: number; end: number }[] = [];
  lines.forEach((line, i) => {
    if (!NODES_HEADER.test(line)) return;
    let next = i + 1;
    while (next < lines.length && !TABLE_HEADER.test(lines[next] as string)) next++;
    let end = next;
    if (next < lines.length) {
      // Comment lines directly above the next header describe it.
      while (end > i + 1 && COMMENT.test(lines[end - 1] as string)) end--;
    }
    blocks.push({ start: i, end });
  });
  return blocks;
}

/** `text` with a `[[nodes]]` table for `node` after the last node, else at the end. */
export function withNodeAdded(text: string, node: NodeConfig): string {
  const { lines, eol } = splitLines(text);
  const block = ['[[nodes]]', `name = ${tomlString(node.name)}`, `address = ${tomlString(node.address)}`];
  if (node.caFile !== undefined) block.push(`ca_file = ${tomlString(node.caFile)}`);
  if (node.serverName !== undefined) block.push(`server_name = ${tomlString(node.serverName)}`);
  const last = nodeBlocks(lines).at(-1);
  let at = last?.end ?? lines.length;
  // After the last node's own lines, before the blank lines that part it from what follows.
  while (at > (last ? last.start + 1 : 0) && BLANK.test(lines[at - 1] as string)) at--;
  const before = lines.slice(0, at);
  const after = lines.slice(at);
  const separated = before.length > 0 ? ['', ...block] : block;
  const tail = after.length > 0 && !BLANK.test(after[0] as string) ? ['', ...after] : after;
  return joinLines([...before, ...separated, ...tail], eol);
}

/** `text` without the `index`-th of `count` `[[nodes]]` tables. */
export function withNodeRemoved(text: string, index: number, count: number, file: string): string {
  const { lines, eol } = splitLines(text);
  const blocks = nodeBlocks(lines);
  const block = blocks[index];
  if (blocks.length !== count || block === undefined) {
    throw new McpError(
      'FAILED_PRECONDITION',
      `${file}: the nodes are not all written as [[nodes]] tables, so this one cannot be cut out safely: remove it by hand`,
    );
  }
  let start = block.start;
  // Comment lines directly above its header describe it, and go with it.
  while (start > 0 && COMMENT.test(lines[start - 1] as string)) start--;
  // The blank lines that parted it from what came before go with it, when it was the last thing.
  if (block.end >= lines.length) while (start > 0 && BLANK.test(lines[start - 1] as string)) start--;
  return joinLines([...lines.slice(0, start), ...lines.slice(block.end)], eol);
}

/**
 * Makes one NodeStatus call to `node` with the connector's token. Returns undefined when the
 * agent answered, its refusal when it answered no; throws exit 4 when nothing answered.
 */
async function checkAgentAnswers(
  node: NodeConfig,
  config: ConnectorConfig,
): Promise<{ code: string; message: string } | undefined> {
  const [{ AgentConnection }, { rpcCodecs }, { createBearerSource }, { silentLogger }] = await Promise.all([
    import('../agent-client.js'),
    import('../../tools.generated.js'),
    import('../tokens.js'),
    import('../../core/log.js'),
  ]);
  // Without a token the agent still answers (UNAUTHENTICATED), which is what is checked here.
  const token = await createBearerSource(config)
    .token()
    .catch(() => 'none');
  const connection = new AgentConnection(node, { retry: { retries: 0, baseDelayMs: 0 }, log: silentLogger });
  try {
    await connection.unary(
      rpcCodecs.NodeStatus,
      {},
      { token, timeoutSeconds: CHECK_TIMEOUT_SECONDS, readOnly: true, tool: 'node_status' },
    );
    return undefined;
  } catch (err) {
    const e = err instanceof McpError ? err : new McpError('INTERNAL', String(err));
    if (e.code === 'UNAVAILABLE' || e.code === 'DEADLINE_EXCEEDED') {
      // The code stays UNAVAILABLE / DEADLINE_EXCEEDED: exit 4, as for any unreachable node.
      throw new McpError(
        e.code,
        `${e.message}. Nothing was written; to add the node anyway, pass --no-check`,
      );
    }
    return { code: e.code, message: e.message };
  } finally {
    connection.close();
  }
}

/** Replaces `file` by `text` through a temp file in the same directory, keeping its mode. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const { mode } = await stat(file);
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(temp, text, { mode: mode & 0o7777, flag: 'wx' });
    await chmod(temp, mode & 0o7777);
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}
