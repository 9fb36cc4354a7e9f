/**
 * The reads: `mcp list` (ListServices), `mcp ps` (LiveCheck: what runs right now, with uptime
 * and version) and `mcp status` (one service, drift highlighted, recent events). Every node
 * is asked unless --node names one; a node that fails is warned about and sets the exit code.
 */
import type { Command } from 'commander';
import type * as pb from '../../gen/mcp/v1/mcp.js';
import type { CliContext, NodeEntry } from './context.js';
import { codecs, formatting } from './lazy.js';
import { nodeArg } from './lifecycle.js';

/** The entries of the nodes that answered, decoded. */
function answered<T>(
  result: Record<string, unknown>,
  decode: (json: unknown) => T,
): { node: string; response: T }[] {
  return ((result.nodes ?? []) as NodeEntry[]).flatMap((n) =>
    n.result === undefined ? [] : [{ node: n.node, response: decode(n.result) }],
  );
}

/** Seconds as the largest two units: 3d4h, 5h12m, 4m10s, 9s. */
export function uptime(since: Date | undefined, now = Date.now()): string {
  if (!since) return '-';
  let s = Math.max(0, Math.floor((now - since.getTime()) / 1000));
  const parts: [number, string][] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (s >= size) {
      parts.push([Math.floor(s / size), unit]);
      s %= size;
    }
  }
  parts.push([s, 's']);
  return parts
    .slice(0, 2)
    .map(([n, u]) => `${n}${u}`)
    .join('');
}

export function register(program: Command, ctx: CliContext): void {
  const state = (word: string, wanted?: string) => {
    if (word === 'running') return ctx.out.paint('green', word);
    if (wanted !== undefined && wanted !== word && !(wanted === 'stopped' && word === 'exited')) {
      return ctx.out.paint('red', word);
    }
    return word === '-' ? word : ctx.out.paint('yellow', word);
  };

  program
    .command('list')
    .alias('ls')
    .description('the services every node has recorded, per component')
    .addHelpText(
      'after',
      `
Examples:
  mcp list
  mcp list --node node1
  mcp list --json | jq '.nodes[].result.services[].name'`,
    )
    .action(async (_options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { desired, observed } = await formatting();
      const { result } = await ctx.withSession(opts, (s) => s.call('list_services', nodeArg(opts)));
      if (opts.json) return ctx.out.json(result);
      const rows = answered(result, (await codecs()).ListServicesResponse.fromJSON).flatMap(
        ({ node, response }) =>
          response.services.flatMap((s) =>
            s.components.map((c) => {
              const want = desired(c.desiredState);
              return [node, s.name, c.name, want, state(observed(c.observedState), want), c.version || '-'];
            }),
          ),
      );
      ctx.out.line(
        rows.length === 0
          ? 'no services'
          : ctx.out.table(['node', 'service', 'component', 'desired', 'observed', 'version'], rows),
      );
    });

  program
    .command('ps')
    .description('what runs on every node right now (a live check), with uptime and version')
    .addHelpText(
      'after',
      `
Unlike list, ps asks the runtime, records what changed, and names containers no service owns.

Examples:
  mcp ps
  mcp ps --node node2 --json`,
    )
    .action(async (_options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { desired, observed } = await formatting();
      const { result } = await ctx.withSession(opts, (s) => s.call('live_check', nodeArg(opts)));
      if (opts.json) return ctx.out.json(result);
      const nodes = answered(result, (await codecs()).LiveCheckResponse.fromJSON);
      const rows = nodes.flatMap(({ node, response }) =>
        response.services.flatMap((s) =>
          s.components.map((c) => {
            const word = observed(c.observedState);
            return [
              node,
              c.container || `${s.name}/${c.name}`,
              state(word, desired(c.desiredState)),
              word === 'running' ? uptime(c.startedAt) : '-',
              c.version || '-',
              c.image,
            ];
          }),
        ),
      );
      ctx.out.line(
        rows.length === 0
          ? 'nothing running'
          : ctx.out.table(['node', 'container', 'state', 'uptime', 'version', 'image'], rows),
      );
      for (const { node, response } of nodes) {
        for (const c of response.changes) {
          ctx.out.line(
            `changed on ${node}: ${c.service}/${c.component} ${observed(c.previousState)} -> ${observed(c.observedState)}`,
          );
        }
        if (response.unmanaged.length > 0) {
          ctx.out.line(
            `unmanaged on ${node}: ${response.unmanaged.map((u) => u.name).join(', ')} (mcp adopt SERVICE takes them under management)`,
          );
        }
      }
    });

  program
    .command('status')
    .description('one service on every node that has it: components, drift (highlighted), recent events')
    .argument('<service>', 'the service')
    .option('-e, --events <n>', 'how many recent events to show', '10')
    .addHelpText(
      'after',
      `
Examples:
  mcp status web
  mcp status web --events 30
  mcp status web --json`,
    )
    .action(async (service: string, options: { events: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { desired, observed } = await formatting();
      const eventLimit = Number(options.events);
      const { result } = await ctx.withSession(opts, (s) =>
        s.call('service_status', {
          service,
          ...(Number.isInteger(eventLimit) && eventLimit >= 0 ? { eventLimit } : {}),
          ...nodeArg(opts),
        }),
      );
      if (opts.json) return ctx.out.json(result);
      const nodes = answered(result, (await codecs()).GetServiceStatusResponse.fromJSON).filter(
        (n) => n.response.service,
      );
      if (nodes.length === 0) ctx.out.line(`no node has a service named ${service}`);
      for (const { node, response } of nodes) {
        const s = response.service as pb.ServiceInfo;
        const drifting = new Set(response.drift.map((d) => d.component));
        ctx.out.line(ctx.out.paint('bold', `${s.name} on ${node}${s.active ? '' : ' (inactive)'}`));
        ctx.out.line(
          ctx.out.table(
            ['component', 'desired', 'observed', 'version', 'container', 'uptime'],
            s.components.map((c) => {
              const want = desired(c.desiredState);
              const is = observed(c.observedState);
              return [
                drifting.has(c.name) ? ctx.out.paint('red', `${c.name} (drift)`) : c.name,
                want,
                state(is, want),
                c.version || '-',
                c.container || '-',
                is === 'running' ? uptime(c.startedAt) : '-',
              ];
            }),
          ),
        );
        if (response.drift.length === 0) ctx.out.line(ctx.out.paint('green', 'no drift'));
        for (const d of response.drift) {
          const image =
            d.desiredImage && d.runningImage ? ` (image ${d.runningImage}, wants ${d.desiredImage})` : '';
          ctx.out.line(
            ctx.out.paint(
              'red',
              `drift: ${d.component} wants ${desired(d.desiredState)}, is ${observed(d.observedState)}${image}`,
            ),
          );
        }
        if (response.events.length > 0) {
          ctx.out.line('recent events:');
          ctx.out.line(
            ctx.out.table(
              ['time', 'component', 'kind', 'message'],
              response.events.map((e) => [
                e.time?.toISOString() ?? '-',
                e.component || '-',
                e.kind,
                e.message,
              ]),
            ),
          );
        }
        ctx.out.line();
      }
    });

  program
    .command('updates')
    .description("whether each running component's registry has moved its tag (check_updates)")
    .option('--service <service>', 'only this service')
    .addHelpText(
      'after',
      `
Compares the digest each running component's image was pulled as with the digest its registry
serves for the tag now. A registry that cannot be asked gives "unknown" with the reason.

Examples:
  mcp updates
  mcp updates --service web --node node1 --json`,
    )
    .action(async (options: { service?: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const args = { ...nodeArg(opts), ...(options.service ? { service: options.service } : {}) };
      const { result } = await ctx.withSession(opts, (s) => s.call('check_updates', args));
      if (opts.json) return ctx.out.json(result);
      const rows = answered(result, (await codecs()).CheckUpdatesResponse.fromJSON).flatMap(
        ({ node, response }) =>
          response.updates.map((u) => [
            node,
            `${u.service}/${u.component}`,
            u.image,
            u.status === 'update_available'
              ? ctx.out.paint('yellow', 'update available')
              : u.status === 'current'
                ? ctx.out.paint('green', 'current')
                : `unknown: ${u.reason}`,
          ]),
      );
      ctx.out.line(
        rows.length === 0
          ? 'no running components'
          : ctx.out.table(['node', 'component', 'image', 'status'], rows),
      );
    });
}
