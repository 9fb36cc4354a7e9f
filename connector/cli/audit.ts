/**
 * `mcp audit`: the audit logs of the nodes read as one (connector/audit-review.ts). A table of
 * calls across nodes, one record whole, a live follow, chain verification against anchors kept
 * on this machine, and an export as JSON lines. The review calls the agents with the
 * connector's own token, through the connector's agent connections.
 *
 * The filter options sit on `audit` itself; commander hands an ancestor's options to it even
 * when they follow a subcommand, so `export` reads --since from there, and every subcommand
 * reads the nodes from the global --node, which may be repeated.
 */
import type { Command } from 'commander';
import type { AuditDecisionName } from '../../core/states.js';
import type { AuditReviewContext, AuditRow, AuditVerification, NodeFailure } from '../audit-review.js';
import { type CliContext, ExitCode, exitCodeFor, type GlobalOptions, UsageError } from './context.js';

interface AuditOptions {
  service?: string;
  caller?: string;
  tool?: string;
  decision?: string;
  since?: string;
  limit?: string;
  follow?: boolean;
}

const HEADER = ['time', 'node', 'caller', 'tool', 'service', 'decision', 'outcome', 'duration'] as const;

/** Runs `use` with the review's view of the fleet, in a connector session closed afterwards. */
async function withReview<T>(
  ctx: CliContext,
  opts: GlobalOptions,
  use: (review: AuditReviewContext, lib: typeof import('../audit-review.js')) => Promise<T>,
): Promise<T> {
  // Loaded on use: help and completion start without protobuf and the generated codecs.
  const lib = await import('../audit-review.js');
  return ctx.withSession(opts, async (session) => use(await session.connector.auditReview(), lib));
}

function nodes(ctx: CliContext): { nodes?: string[] } {
  return ctx.nodesNamed.length === 0 ? {} : { nodes: [...new Set(ctx.nodesNamed)] };
}

/** A node that could not be read is warned about and sets the exit code; the others still show. */
function reportFailures(ctx: CliContext, failures: readonly NodeFailure[]): void {
  for (const { node, error } of failures) {
    ctx.out.warn(`${node}: ${error.code}: ${error.message}`);
    ctx.raiseExitCode(exitCodeFor(error.code));
  }
}

function decisionOf(decision: string | undefined): AuditDecisionName | undefined {
  if (decision === undefined || decision === 'allow' || decision === 'deny') return decision;
  throw new UsageError(`--decision ${decision}: give allow or deny`);
}

function limitOf(limit: string | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (!/^\d+$/.test(limit) || Number(limit) < 1) {
    throw new UsageError(`--limit ${limit}: give a whole number >= 1, for example --limit 500`);
  }
  return Number(limit);
}

function duration(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms)}ms`;
}

export function register(program: Command, ctx: CliContext): void {
  const cells = (row: AuditRow): string[] => [
    row.time.toISOString(),
    row.node,
    row.caller || '-',
    row.tool,
    row.service || '-',
    row.decision === 'deny' ? ctx.out.paint('red', row.decision) : row.decision,
    row.outcome === 'error'
      ? ctx.out.paint('red', row.errorCode ? `error ${row.errorCode}` : 'error')
      : row.outcome === 'ok'
        ? ctx.out.paint('green', row.outcome)
        : row.outcome,
    duration(row.durationMs),
  ];
  const jsonRow = (row: AuditRow) => ({ ...row, time: row.time.toISOString() });

  const audit = program
    .command('audit')
    .description('review the audit logs of the nodes as one: filter, follow, show, verify, anchor, export')
    .option('--service <service>', 'calls about this service')
    .option('--caller <subject>', "calls by this caller (the token's subject)")
    .option('--tool <tool>', 'calls of this tool (deploy) or RPC (Deploy)')
    .option('--decision <decision>', 'allow or deny')
    .option(
      '--since <time>',
      'calls since a duration ago (90s, 15m, 1h, 7d) or a time (2026-11-30T12:00:00Z)',
    )
    .option('--limit <n>', 'the most recent N calls across the nodes (default 100)')
    .option('-f, --follow', 'keep printing calls as the nodes record them, until Ctrl-C')
    .addHelpText(
      'after',
      `
Every node is read unless --node names some; give --node more than once for several. The
review calls each node's agent with your token, which needs audit.query (audit.verify for verify and anchor).
audit anchor notes each node's chain head in $MCP_HOME/audit-anchors.json (or --anchors FILE);
audit verify then also proves that no node's log lost records since.

Examples:
  mcp audit --since 1h
  mcp audit --decision deny --node node1 --node node2
  mcp audit --tool deploy --service web --limit 20
  mcp audit --follow
  mcp audit show node1 1234
  mcp audit anchor && mcp audit verify
  mcp audit export --since 7d > audit.jsonl`,
    )
    .action(async (options: AuditOptions, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const filters = {
        ...nodes(ctx),
        ...(options.service !== undefined ? { service: options.service } : {}),
        ...(options.caller !== undefined ? { caller: options.caller } : {}),
        ...(options.tool !== undefined ? { tool: options.tool } : {}),
        ...(options.decision !== undefined ? { decision: decisionOf(options.decision) } : {}),
      };
      if (options.follow) {
        if (options.since !== undefined || options.limit !== undefined) {
          throw new UsageError('--follow shows calls from now on: leave out --since and --limit');
        }
        return follow(filters, opts);
      }
      const limit = limitOf(options.limit);
      const { rows, failures } = await withReview(ctx, opts, (review, lib) =>
        lib.queryAuditAcrossNodes(review, {
          ...filters,
          ...(options.since !== undefined ? { since: options.since } : {}),
          ...(limit !== undefined ? { limit } : {}),
        }),
      );
      reportFailures(ctx, failures);
      if (opts.json) {
        return ctx.out.json({ rows: rows.map(jsonRow), failures: failures.map(failureJson) });
      }
      ctx.out.line(rows.length === 0 ? 'no matching calls' : ctx.out.table(HEADER, rows.map(cells)));
    });

  /** Rows as the nodes write them, one line each (JSON lines with --json), until a signal. */
  async function follow(
    filters: { nodes?: string[]; service?: string; caller?: string; tool?: string },
    opts: GlobalOptions,
  ): Promise<void> {
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await withReview(ctx, opts, async (review, lib) => {
        const names = filters.nodes ?? review.fleet.allNodes().map((n) => n.name);
        ctx.out.note(`following the audit logs of ${names.join(', ')} (Ctrl-C to stop)`);
        // Rows arrive one by one: fixed-width columns instead of a table that needs them all.
        const widths = [24, 10, 16, 20, 16, 8, 12, 8];
        const line = (values: readonly string[]) =>
          values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ');
        if (!opts.json) ctx.out.line(line(HEADER));
        await lib.followAudit(
          review,
          filters,
          (row) =>
            opts.json
              ? process.stdout.write(`${JSON.stringify(jsonRow(row))}\n`)
              : ctx.out.line(line(cells(row))),
          stop.signal,
          (failure) => {
            ctx.out.warn(`${failure.node}: ${failure.error.code}: ${failure.error.message}`);
            // A refusal ends that node's follow; anything else is retried.
            if (failure.error.code === 'PERMISSION_DENIED' || failure.error.code === 'UNAUTHENTICATED') {
              ctx.raiseExitCode(exitCodeFor(failure.error.code));
            }
          },
        );
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  audit
    .command('show')
    .description('one call whole: caller, roles, arguments hash, outcome and the chain hashes')
    .argument('<node>', 'the node that recorded it')
    .argument('<seq>', 'its record number (the seq column of --json)')
    .action(async (node: string, seqText: string, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      if (!/^\d+$/.test(seqText))
        throw new UsageError(`audit show ${node} ${seqText}: SEQ is a record number`);
      const json = await withReview(ctx, opts, async (review, lib) => {
        const [record, { AuditRecord }] = await Promise.all([
          lib.showAuditRecord(review, node, Number(seqText)),
          import('../../gen/mcp/v1/mcp.js'),
        ]);
        return AuditRecord.toJSON(record) as Record<string, unknown>;
      });
      if (opts.json) return ctx.out.json(json);
      const width = Math.max(...Object.keys(json).map((k) => k.length));
      for (const [key, value] of Object.entries(json)) {
        ctx.out.line(
          `${`${key}:`.padEnd(width + 2)}${Array.isArray(value) ? value.join(', ') : String(value)}`,
        );
      }
    });

  const anchorsOption = '--anchors <file>';
  const anchorsHelp = 'the anchors file (default $MCP_HOME/audit-anchors.json)';

  audit
    .command('verify')
    .description("check every node's hash chain, and that it still holds the heads noted by audit anchor")
    .option(anchorsOption, anchorsHelp)
    .action(async (options: { anchors?: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const file = await anchorsFile(options.anchors);
      const verification = await withReview(ctx, opts, (review, lib) =>
        lib.verifyAuditAcrossNodes(review, file, nodes(ctx)),
      );
      printVerification(verification, opts, file, 'verified');
    });

  audit
    .command('anchor')
    .description("verify every node's chain and note its head in the anchors file, off the nodes")
    .option(anchorsOption, anchorsHelp)
    .action(async (options: { anchors?: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const file = await anchorsFile(options.anchors);
      const verification = await withReview(ctx, opts, (review, lib) =>
        lib.anchorAudit(review, file, nodes(ctx)),
      );
      printVerification(verification, opts, file, 'anchored');
    });

  audit
    .command('export')
    .description('every record since a time, oldest first, as JSON lines on stdout (--since is required)')
    .action(async (_options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      // --since is audit's own option: commander gives it to audit even after `export`.
      const since = cmd.optsWithGlobals<AuditOptions>().since;
      if (since === undefined) {
        throw new UsageError('audit export needs --since: for example mcp audit export --since 7d');
      }
      const { count, failures } = await withReview(ctx, opts, (review, lib) =>
        lib.exportAudit(
          review,
          since,
          (line) =>
            new Promise<void>((resolve) => {
              // Waits for a full pipe to drain, so a large export is not held in memory.
              if (process.stdout.write(line)) resolve();
              else process.stdout.once('drain', resolve);
            }),
          nodes(ctx),
        ),
      );
      reportFailures(ctx, failures);
      ctx.out.note(`exported ${count} record${count === 1 ? '' : 's'}`);
    });

  function printVerification(
    verification: AuditVerification,
    opts: GlobalOptions,
    file: string,
    verb: 'verified' | 'anchored',
  ): void {
    reportFailures(ctx, verification.failures);
    if (!verification.nodes.every((n) => n.ok)) ctx.raiseExitCode(ExitCode.failed);
    if (opts.json) {
      ctx.out.json({ ...verification, failures: verification.failures.map(failureJson), anchorsFile: file });
      return;
    }
    for (const n of verification.nodes) {
      ctx.out.line(
        n.ok
          ? `${n.node}: ${ctx.out.paint('green', 'ok')}, ${n.count} records, head ${n.head.seq} ${n.head.hash.slice(0, 16)}, ${n.anchorsChecked} anchors checked`
          : `${n.node}: ${ctx.out.paint('red', 'FAILED')} at record ${n.failedSeq}: ${n.reason}`,
      );
    }
    if (verb === 'anchored') ctx.out.note(`anchors in ${file}`);
  }
}

function failureJson(failure: NodeFailure): { node: string; code: string; message: string } {
  return { node: failure.node, code: failure.error.code, message: failure.error.message };
}

/** --anchors, else the file in the CLI's state directory ($MCP_HOME). */
async function anchorsFile(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  const [{ localHomeDir }, { defaultAnchorsFile }] = await Promise.all([
    import('../../core/local-home.js'),
    import('../audit-review.js'),
  ]);
  return defaultAnchorsFile(localHomeDir());
}
