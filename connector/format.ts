/**
 * The short human-readable text of a tool result: a compact table per result type; each
 * tool's binding (tool-bindings.ts) names its formatter, and errors per node follow it. The
 * structured result carries everything; this is what a person (or a model skimming) reads
 * first, so it stays small and never dumps JSON.
 */
import type { McpError } from '../core/errors.js';
import * as pb from '../gen/mcp/v1/mcp.js';
import { type Row, table } from './text-table.js';

export function errorText(error: Pick<McpError, 'code' | 'message'>): string {
  return `${error.code}: ${error.message}`;
}

export const desired = (s: pb.DesiredState) => stateWord(pb.desiredStateToJSON(s), 'DESIRED_STATE_');
export const observed = (s: pb.ObservedState) => stateWord(pb.observedStateToJSON(s), 'OBSERVED_STATE_');

function stateWord(name: string, prefix: string): string {
  const word = name.replace(prefix, '').toLowerCase();
  return word === 'unspecified' || word === 'unrecognized' ? '-' : word;
}

const dash = (s: string) => (s === '' ? '-' : s);

/** A node that answered, with its answer: what a formatter is given. */
export interface Answered<O> {
  readonly node: string;
  readonly response: O;
}

/** The text of the nodes that answered a tool, in config order; errors and notes follow it. */
export type Formatter<O> = (answers: readonly Answered<O>[]) => string;

/** One section per node, a blank line apart. */
const perNode =
  <O>(section: (node: string, response: O) => string): Formatter<O> =>
  (answers) =>
    answers.map((a) => section(a.node, a.response)).join('\n\n');

export const servicesText: Formatter<pb.ListServicesResponse> = (answers) =>
  servicesTable(answers.flatMap((a) => serviceRows(a.node, a.response.services)));

export const serviceStatusText: Formatter<pb.GetServiceStatusResponse> = perNode(serviceStatus);

export const nodeStatusText: Formatter<pb.NodeStatusResponse> = (answers) =>
  nodeStatus(answers.map((a) => a.response));

/** What deploy, stop, start and restart return: a result per component. */
type ComponentResults = Pick<pb.DeployResult, 'service' | 'components' | 'replayed'>;

/** `verb` says what was done: deployed, stopped, started, restarted. */
export const componentResultsText = (verb: string): Formatter<ComponentResults> =>
  perNode((node, r) => componentResults(verb, node, r));

export const syncText: Formatter<pb.SyncDesiredStateToolOutput> = perNode(sync);

export const removeText: Formatter<pb.RemoveServiceResponse> = perNode(removed);

export const logsText: Formatter<pb.ServiceLogsResponse> = perNode(logs);

export const adoptText: Formatter<pb.AdoptContainersResponse> = perNode(adopt);

/** check_updates: one row per running component, the digests shortened. */
export const updatesText: Formatter<pb.CheckUpdatesResponse> = (answers) => {
  const rows = answers.flatMap((a) =>
    a.response.updates.map(
      (u): Row => [
        a.node,
        u.service,
        u.component,
        u.image,
        u.status === 'unknown' ? `unknown: ${u.reason}` : u.status.replace('_', ' '),
        dash(u.runningDigest.replace(/^sha256:/, '').slice(0, 12)),
        dash(u.registryDigest.replace(/^sha256:/, '').slice(0, 12)),
      ],
    ),
  );
  if (rows.length === 0) return 'no running components';
  return table(['node', 'service', 'component', 'image', 'status', 'running', 'registry'], rows);
};

export const pushedText: Formatter<pb.PushFileResponse> = perNode(pushed);

export const pulledText: Formatter<pb.PullFileToolOutput> = perNode(pulled);

function serviceRows(node: string, services: readonly pb.ServiceInfo[]): Row[] {
  return services.flatMap((s) =>
    s.components.length === 0
      ? [[node, s.name, '-', '-', '-', '-']]
      : s.components.map((c) => [
          node,
          s.name,
          c.name,
          desired(c.desiredState),
          `${observed(c.observedState)}${c.health ? ` (${c.health})` : ''}`,
          dash(c.version),
        ]),
  );
}

function servicesTable(rows: Row[]): string {
  if (rows.length === 0) return 'no services';
  return table(['node', 'service', 'component', 'desired', 'observed', 'version'], rows);
}

/** Unmanaged containers named in the text per node; the structured result has them all. */
const UNMANAGED_SHOWN = 8;

export function liveCheckText(answers: readonly Answered<pb.LiveCheckResponse>[]): string {
  const out = [servicesTable(answers.flatMap((a) => serviceRows(a.node, a.response.services)))];
  for (const { node, response } of answers) {
    for (const c of response.changes) {
      out.push(
        `changed on ${node}: ${c.service}/${c.component} ${observed(c.previousState)} -> ${observed(c.observedState)}`,
      );
    }
    if (response.unmanaged.length > 0) {
      const shown = response.unmanaged
        .slice(0, UNMANAGED_SHOWN)
        .map((u) => `${u.name} (${observed(u.observedState)})`);
      const more = response.unmanaged.length - shown.length;
      out.push(
        `unmanaged on ${node} (${response.unmanaged.length}): ${shown.join(', ')}${more > 0 ? `, and ${more} more` : ''}; adopt_containers takes a service's containers under management`,
      );
    }
  }
  return out.join('\n');
}

function serviceStatus(node: string, r: pb.GetServiceStatusResponse): string {
  const s = r.service;
  if (!s) return `${node}: no such service`;
  const out = [
    `${s.name} on ${node}${s.active ? '' : ' (inactive)'}`,
    table(
      ['component', 'desired', 'observed', 'version', 'container'],
      s.components.map((c) => [
        c.name,
        desired(c.desiredState),
        observed(c.observedState),
        dash(c.version),
        c.container,
      ]),
    ),
  ];
  out.push(
    r.drift.length === 0
      ? 'no drift'
      : `drift: ${r.drift.map((d) => `${d.component} wants ${desired(d.desiredState)}, is ${observed(d.observedState)}`).join('; ')}`,
  );
  if (r.events.length > 0) {
    out.push('recent events:');
    out.push(
      table(
        ['time', 'component', 'kind', 'message'],
        r.events.slice(0, 10).map((e) => [e.time?.toISOString() ?? '-', e.component, e.kind, e.message]),
      ),
    );
  }
  return out.join('\n');
}

function nodeStatus(responses: readonly pb.NodeStatusResponse[]): string {
  return table(
    [
      'node',
      'runtime',
      'agent',
      'services',
      'components',
      'running',
      'disk free',
      'memory free',
      'load',
      'uptime',
      'cert expires',
    ],
    responses.map((r) => [
      r.node,
      `${r.runtime} ${r.runtimeVersion}`.trim(),
      dash(r.agentVersion),
      String(r.services),
      String(r.components),
      String(r.running),
      r.disk ? `${bytes(r.disk.availableBytes)} of ${bytes(r.disk.totalBytes)}` : '-',
      `${bytes(r.memoryAvailableBytes)} of ${bytes(r.memoryTotalBytes)}`,
      r.loadAverage.map((l) => l.toFixed(2)).join(' ') || '-',
      duration(r.uptimeSeconds),
      r.tlsCertNotAfter ? new Date(r.tlsCertNotAfter).toISOString().slice(0, 10) : '-',
    ]),
  );
}

export function auditText(answers: readonly Answered<pb.QueryAuditResponse>[]): string {
  const rows = answers.flatMap(({ node, response }) =>
    response.records.map((r) => [
      r.time?.toISOString() ?? '-',
      dash(r.node || node),
      dash(r.subject),
      dash(r.tool || r.rpc),
      dash(r.service),
      stateWord(pb.auditDecisionToJSON(r.decision), 'AUDIT_DECISION_'),
      stateWord(pb.auditOutcomeToJSON(r.outcome), 'AUDIT_OUTCOME_'),
      dash(r.errorCode),
    ]),
  );
  const out = [
    rows.length === 0
      ? 'no audit records match'
      : table(['time', 'node', 'subject', 'tool', 'service', 'decision', 'outcome', 'error'], rows),
  ];
  for (const { node, response } of answers) {
    if (response.nextPageToken)
      out.push(`more on ${node}: call again with node "${node}" and pageToken "${response.nextPageToken}"`);
  }
  return out.join('\n');
}

function componentResults(verb: string, node: string, r: ComponentResults): string {
  const good = r.components.filter((c) => c.ok).length;
  const head = `${r.service} on ${node}: ${verb} ${good} of ${r.components.length} component${r.components.length === 1 ? '' : 's'}${r.replayed ? ' (replayed: the first result of this requestId; nothing was done now)' : ''}`;
  const out = [head];
  if (r.components.length > 0) {
    out.push(
      table(
        ['component', 'ok', 'desired', 'observed', 'version', 'container'],
        r.components.map((c) => [
          c.component,
          c.ok ? 'yes' : 'NO',
          desired(c.desiredState),
          observed(c.observedState),
          dash(c.version),
          dash(c.container),
        ]),
      ),
    );
  }
  for (const c of r.components) if (!c.ok && c.error) out.push(`${c.component}: ${c.error}`);
  return out.join('\n');
}

function sync(node: string, r: pb.SyncDesiredStateToolOutput): string {
  const synced = r.byNode.filter((n) => n.error === '').map((n) => n.node);
  const out = [`synced on ${synced.join(', ') || node}${r.replayed ? ' (replayed)' : ''}`];
  if (r.services.length > 0) {
    out.push(
      table(
        ['service', 'change', 'details'],
        r.services.map((s) => [s.service, s.change, s.details.join('; ') || '-']),
      ),
    );
  }
  // Strays apart from the services: other tools' containers, recorded so they raise no alert.
  for (const n of r.byNode) {
    if (n.ignored.length > 0) {
      out.push(
        `${n.node}: marked ignore (match no definition; remove_service forgets one): ${n.ignored.join(', ')}`,
      );
    }
  }
  for (const n of r.byNode) if (n.error) out.push(`${n.node}: not synced: ${n.error}`);
  return out.join('\n');
}

function removed(node: string, r: pb.RemoveServiceResponse): string {
  const out = [
    `${r.service} removed from ${node}${r.replayed ? ' (replayed: the first result of this requestId; nothing was done now)' : ''}`,
  ];
  if (r.components.length > 0) {
    out.push(
      table(
        ['component', 'container', 'container was'],
        r.components.map((c) => [c.component, c.container, c.outcome]),
      ),
    );
  }
  if (r.filesRemoved) out.push(`deleted ${r.filesRemoved}`);
  return out.join('\n');
}

function logs(node: string, r: pb.ServiceLogsResponse): string {
  const out: string[] = [];
  for (const c of r.components) {
    out.push(`--- ${r.service}/${c.component} (${c.container}) on ${node}`);
    // The cap keeps the newest lines: what it left out came before them.
    if (c.truncated) {
      out.push(
        `[truncated: ${c.bytesDropped} bytes of older lines left out; raise \`maxBytes\` or lower \`tail\`]`,
      );
    }
    // An error says why there are no lines, or why they stop early (the read ran out of time).
    if (c.text !== '') out.push(c.text.replace(/\n$/, ''));
    if (c.error) out.push(c.error);
    else if (c.text === '') out.push('(no log lines)');
  }
  return out.join('\n');
}

function adopt(node: string, r: pb.AdoptContainersResponse): string {
  return [
    `${r.service} on ${node}: adopted ${r.components.length} component${r.components.length === 1 ? '' : 's'}${r.replayed ? ' (replayed)' : ''}`,
    table(
      ['component', 'container', 'image', 'desired', 'observed'],
      r.components.map((c) => [
        c.name,
        c.container,
        c.image,
        desired(c.desiredState),
        observed(c.observedState),
      ]),
    ),
  ].join('\n');
}

function pushed(node: string, r: pb.PushFileResponse): string {
  return `wrote ${r.path} of ${r.service} on ${node}: ${bytes(r.size)}, mode ${octal(r.mode)}, sha256 ${r.sha256}`;
}

/** The header line, then the text itself when it came back inline (that is what the caller asked for). */
function pulled(node: string, r: pb.PullFileToolOutput): string {
  const head = `read ${r.path} of ${r.service} on ${node}: ${bytes(r.size)}, mode ${octal(r.mode)}, sha256 ${r.sha256}`;
  if (r.localPath) return `${head}\nsaved to ${r.localPath}`;
  if (r.contentBase64) return `${head}\nbinary content: base64 in contentBase64`;
  return `${head}\n${r.content}`;
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m`;
}
