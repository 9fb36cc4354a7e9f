#!/usr/bin/env node
/**
 * mcp: the fleet from a terminal. This file builds the commander program; each group of
 * commands lives in connector/cli/ and registers itself. Every operation is the connector's
 * tool of the same job, called in-process (connector/cli/context.ts), so arguments are
 * validated, routed and answered exactly as for an AI client.
 */
import { Command, Option } from 'commander';
import { PACKAGE_VERSION } from '../core/version.js';
import * as account from './cli/account.js';
import * as agent from './cli/agent.js';
import * as audit from './cli/audit.js';
import * as completion from './cli/completion.js';
import { CliContext, ExitCode } from './cli/context.js';
import * as files from './cli/files.js';
import * as lifecycle from './cli/lifecycle.js';
import * as nodes from './cli/nodes.js';
import * as observe from './cli/observe.js';
import * as service from './cli/service.js';
import * as toolCommands from './cli/tools.js';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('mcp')
    .description('drive the fleet from a terminal: deploy, observe and move files to services on their nodes')
    .version(PACKAGE_VERSION, '-V, --version')
    .addOption(
      new Option(
        '--config <file>',
        'connector config (default $MCP_CONFIG, else ~/.config/mcp/connector.toml, else the local setup in $MCP_HOME)',
      ),
    )
    .addOption(
      new Option(
        '--node <node>',
        'the node to act on (default: from the definition file, or every node for reads); repeatable for audit',
      ).argParser((node: string) => {
        ctx.nodesNamed.push(node);
        return node;
      }),
    )
    .addOption(new Option('--json', 'print the structured result (errors as {code, message}) on stdout'))
    .addOption(new Option('-y, --yes', 'answer yes to confirmation questions (for scripts)'))
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(run mcp help for usage)')
    .exitOverride()
    .configureOutput({
      // With --json, stdout carries only the JSON document; commander's own error line goes.
      writeErr: (text) => {
        if (!ctx.jsonRequested) process.stderr.write(text);
      },
      outputError: (text, write) => {
        if (!ctx.jsonRequested) write(text);
      },
    })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 the operation failed (a partly failed deploy included), 2 bad usage,
3 not authenticated or not permitted, 4 a node unreachable.

Examples:
  mcp list
  mcp deploy web
  mcp status web --json
  mcp push ./app.ini web:conf/app.ini
  mcp call service_logs service=web tail=50
  mcp login
  mcp audit --since 1h
  mcp node add edge-1 edge-1.example.net:7443 --ca-file fleet-ca.pem`,
    );

  for (const group of [
    lifecycle,
    observe,
    service,
    files,
    toolCommands,
    account,
    audit,
    agent,
    nodes,
    completion,
  ])
    group.register(program, ctx);

  program
    .command('ca')
    .description("the fleet's CA and node certificates: ca init | ca issue NODE --address H (mcp ca --help)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[arguments...]')
    .action(async (_args: string[], _options: unknown, cmd: Command) => {
      ctx.raiseExitCode((await runCaCommand(cmd.args)) as ExitCode);
    });
  return program;
}

/** `mcp ca ...`, loaded on use: certificates need the X.509 library, nothing else does. */
async function runCaCommand(argv: readonly string[]): Promise<number> {
  return (await import('./ca-cli.js')).runCaCommand(argv);
}

async function main(argv: string[]): Promise<number> {
  // grpc-js sends a node's address as the TLS server name even when it is an IP address
  // (grpc/grpc-node#1919), and Node warns about that on stderr (DEP0123): a line for every
  // process, in the middle of the output or the JSON log, about nothing the user can change.
  // Deprecations are for whoever develops this code; the tests, which run it from source, see them.
  (process as NodeJS.Process & { noDeprecation: boolean }).noDeprecation = true;
  // `mcp ca ...` keeps its own parser and options (--dir, --address, ...) untouched.
  if (argv[0] === 'ca') return runCaCommand(argv.slice(1));
  const ctx = new CliContext(argv.includes('--json'));
  const program = buildProgram(ctx);
  if (argv.length === 0) {
    program.outputHelp();
    return ExitCode.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.finalExitCode;
  } catch (err) {
    return ctx.report(err, ctx.jsonRequested);
  }
}

main(process.argv.slice(2)).then(
  // Exit once stdout has drained: output to a pipe is written asynchronously.
  (code) => process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    process.stderr.write(`mcp: ${String((err as Error)?.stack ?? err)}\n`);
    process.exit(ExitCode.failed);
  },
);
