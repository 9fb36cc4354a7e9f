/**
 * The writes on services: deploy, stop, start, restart, sync, adopt. Each is the connector's
 * tool of the same job (deploy, stop_service, ..., sync_desired_state, adopt_containers), so
 * routing, the definition files and `active` behave exactly as for an AI client.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type CallAnswer, type CliContext, type GlobalOptions, UsageError } from './context.js';
import { codecs, definitionFiles } from './lazy.js';

/** `service` or `service/component`, as the commands take them. */
export function parseTarget(target: string): { service: string; component?: string } {
  const [service = '', component, extra] = target.split('/');
  if (service === '' || component === '' || extra !== undefined) {
    throw new UsageError(`'${target}' is not SERVICE or SERVICE/COMPONENT: for example web or web/app`);
  }
  return component === undefined ? { service } : { service, component };
}

/** `node` for the tool, when --node was given. */
export function nodeArg(opts: GlobalOptions): { node?: string } {
  return opts.node === undefined ? {} : { node: opts.node };
}

/** The structured result with --json, else the connector's text. */
export function printAnswer(ctx: CliContext, opts: GlobalOptions, answer: CallAnswer): void {
  if (opts.json) ctx.out.json(answer.result);
  else ctx.out.line(answer.text);
}

/** How far into its deploy each step puts a component: the connector's own progress model. */
async function deploySteps(): Promise<Readonly<Record<string, number>>> {
  // Loaded on use: the bindings bring in the gRPC client, which only a call needs.
  const { toolBindings } = await import('../tool-bindings.js');
  return toolBindings.deploy.progress?.stepFraction ?? {};
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('deploy')
    .description(
      "deploy a service (or one component) from its definition file, else the node's recorded spec",
    )
    .argument('<service>', 'SERVICE or SERVICE/COMPONENT')
    .option(
      '-f, --file <file>',
      'deploy this definition file (written to the definitions directory once deployed)',
    )
    .addHelpText(
      'after',
      `
The spec comes from --file, else <services_dir>/<service>.toml, else what the node's registry
recorded for the service. A deploy that fails for any component exits 1.

Examples:
  mcp deploy web
  mcp deploy web/app
  mcp deploy web -f ./web.toml
  mcp deploy web --json`,
    )
    .action(async (target: string, options: { file?: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { service, component } = parseTarget(target);
      const args: Record<string, unknown> = { ...nodeArg(opts) };
      if (component !== undefined) args.component = component;
      if (options.file !== undefined) {
        const [pb, { definitionToSpec, loadDefinition }] = await Promise.all([codecs(), definitionFiles()]);
        const definition = await loadDefinition(resolve(options.file));
        if (definition.name !== service) {
          throw new UsageError(
            `${options.file} defines service "${definition.name}", not "${service}": deploy ${definition.name}, or fix name in the file`,
          );
        }
        args.spec = pb.ServiceSpec.toJSON(definitionToSpec(definition));
        args.node ??= definition.node;
      } else {
        args.service = service;
      }
      const steps = await deploySteps();
      const isStep = (step: string) => step in steps || step === 'done' || step === 'failed';
      const progress = opts.json ? undefined : ctx.out.components(service, steps);
      let answer: CallAnswer;
      try {
        answer = await ctx.withSession(opts, (s) =>
          s.call('deploy', args, {
            onProgress: (p) => {
              // Steps read "component: step: message"; heartbeats and the final line "deploy: ...".
              const [component, step, ...rest] = (p.message ?? '').split(': ');
              if (component && step && rest.length > 0 && isStep(step)) {
                progress?.step(component, step, rest.join(': '));
              }
            },
          }),
        );
      } finally {
        progress?.stop();
      }
      printAnswer(ctx, opts, answer);
    });

  const lifecycle = [
    ['stop', 'stop_service', 'stop a service (writes active = false in its definition file)'],
    ['start', 'start_service', 'start a service (writes active = true in its definition file)'],
    ['restart', 'restart_service', 'restart a service (its definition file is left as it is)'],
  ] as const;
  for (const [verb, tool, description] of lifecycle) {
    program
      .command(verb)
      .description(description)
      .argument('<service>', 'SERVICE or SERVICE/COMPONENT')
      .addHelpText(
        'after',
        `
On the whole service, ${verb === 'restart' ? 'active is not changed' : `active = ${verb === 'start'} is written into its definition file, comments kept`};
on one component, the definition file is not changed.

Examples:
  mcp ${verb} web
  mcp ${verb} web/app --node node2`,
      )
      .action(async (target: string, _options: unknown, cmd: Command) => {
        const opts = ctx.globals(cmd);
        const answer = await ctx.withSession(opts, (s) =>
          s.call(tool, { ...parseTarget(target), ...nodeArg(opts) }),
        );
        printAnswer(ctx, opts, answer);
      });
  }

  program
    .command('sync')
    .description('send every definition file to the node it names (grouped by node) and show what changed')
    .addHelpText(
      'after',
      `
Sync is additive: services no definition names are left in the registry; containers that
match no definition are recorded as ignored and never alert.

Examples:
  mcp sync
  mcp sync --node node1
  mcp sync --json`,
    )
    .action(async (_options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const answer = await ctx.withSession(opts, (s) => s.call('sync_desired_state', nodeArg(opts)));
      if (opts.json) return ctx.out.json(answer.result);
      const output = (await codecs()).SyncDesiredStateToolOutput.fromJSON(answer.result);
      const rows = output.services.map((s) => [s.service, s.change, s.details.join('; ') || '-']);
      ctx.out.line(
        rows.length === 0 ? 'no services synced' : ctx.out.table(['service', 'change', 'details'], rows),
      );
      for (const n of output.byNode) {
        const state = n.error ? ctx.out.paint('red', n.error) : `${n.services.length} synced`;
        ctx.out.line(
          `${n.node}: ${state}${n.ignored.length > 0 ? `, ignored: ${n.ignored.join(', ')}` : ''}`,
        );
      }
      if (output.byNode.some((n) => n.error)) ctx.raiseExitCode(1);
    });

  program
    .command('adopt')
    .description("take a service's running containers (<service> or <service>-*) under management")
    .argument('<service>', 'the service whose containers to adopt')
    .addHelpText(
      'after',
      `
Examples:
  mcp adopt web
  mcp adopt web --node node2`,
    )
    .action(async (service: string, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const answer = await ctx.withSession(opts, (s) =>
        s.call('adopt_containers', { service, ...nodeArg(opts) }),
      );
      if (opts.json) return ctx.out.json(answer.result);
      const adopted = (await codecs()).AdoptContainersResponse.fromJSON(answer.result);
      const node = String(answer.result.node ?? '');
      ctx.out.line(`adopted ${adopted.components.length} container(s) of ${adopted.service} on ${node}`);
      ctx.out.line(
        ctx.out.table(
          ['container', 'component', 'image'],
          adopted.components.map((c) => [c.container, c.name, c.image]),
        ),
      );
    });
}
