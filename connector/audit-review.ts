/**
 * Audit review for the `mcp audit` commands: the audit logs of several nodes read as one
 * (QueryAudit, paginated per node, merged by time), followed live (FollowAudit: one streaming
 * call per node for the whole follow, since every QueryAudit poll would itself be audited),
 * verified (VerifyAudit), anchored, and exported as JSON lines.
 *
 * Anchors: `anchorAudit` verifies each node's chain and notes its head (seq and hash) in a local
 * file, off the nodes; `verifyAuditAcrossNodes` hands a node's anchors back to it, so a node
 * whose newest records were removed (or whose log was rewritten) fails even though the chain
 * that is left is consistent. The file is written with mode 0600 by replacing it whole.
 *
 * One node failing does not fail the others: each function reports it in `failures`.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, McpError, toMcpError } from '../core/errors.js';
import { pause } from '../core/pause.js';
import {
  AUDIT_DECISION_NAMES,
  type AuditDecisionName,
  auditDecisionFromProto,
  auditDecisionToProto,
  auditOutcomeFromProto,
} from '../core/states.js';
import { isRecord } from '../core/text.js';
import type { AuditAnchor, AuditRecord, QueryAuditRequest } from '../gen/mcp/v1/mcp.js';
import { AuditRecord as AuditRecordCodec } from '../gen/mcp/v1/mcp.js';
import { rpcCodecs, tools } from '../tools.generated.js';
import type { AgentConnection, AgentPool, CallSettings } from './agent-client.js';
import type { NodeConfig } from './config.js';
import type { Fleet } from './routing.js';
import type { BearerSource } from './tokens.js';

/** What the review reads from: the configured nodes, their connections, and the operator's token. */
export interface AuditReviewContext {
  fleet: Fleet;
  pool: AgentPool;
  bearer: BearerSource;
}

export interface AuditFilters {
  /** Node names; default every configured node. */
  nodes?: readonly string[];
  service?: string;
  /** The caller's subject. */
  caller?: string;
  /** A tool name (`deploy`) or an RPC name (`Deploy`). */
  tool?: string;
  decision?: AuditDecisionName;
  /** A time, or a duration back from now: `90s`, `15m`, `1h`, `7d`. */
  since?: Date | string;
  /** Most recent rows to return, across all nodes. Default 100. */
  limit?: number;
}

/** One call as the review lists it. */
export interface AuditRow {
  time: Date;
  node: string;
  seq: number;
  /** The caller's subject. */
  caller: string;
  /** Tool name, or the RPC for calls that are not tools. */
  tool: string;
  service: string;
  decision: 'allow' | 'deny';
  outcome: 'ok' | 'error' | 'unknown';
  /** gRPC status name when it failed. */
  errorCode: string;
  durationMs: number;
}

/** A node that could not be read, with why. */
export interface NodeFailure {
  node: string;
  error: McpError;
}

export interface AuditRows {
  /** Oldest first: the `limit` most recent matching calls of all the nodes. */
  rows: AuditRow[];
  failures: NodeFailure[];
}

const DEFAULT_LIMIT = 100;
/** The agent's largest page (registry/audit.ts MAX_AUDIT_PAGE_SIZE). */
const PAGE_SIZE = 500;
const QUERY_TIMEOUT_SECONDS = 30;

/** The matching calls of every selected node, merged by time. */
export async function queryAuditAcrossNodes(
  review: AuditReviewContext,
  filters: AuditFilters = {},
): Promise<AuditRows> {
  const limit = checkedLimit(filters.limit);
  const request = queryRequest(filters, new Date());
  const { results, failures } = await eachNode(review, filters.nodes, (connection, token) =>
    readPages(connection, token, request, limit),
  );
  const rows = results
    .flatMap(({ value }) => value.map(toRow))
    .sort(byTime)
    .slice(-limit);
  return { rows, failures };
}

/** The whole record of call `seq` on `node`. Throws NotFoundError when the node has none. */
export async function showAuditRecord(
  review: AuditReviewContext,
  node: string,
  seq: number,
): Promise<AuditRecord> {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new InvalidArgumentError(`audit record number must be a whole number >= 1, not ${seq}`);
  }
  const connection = review.pool.connection(review.fleet.node(node).name);
  const token = await review.bearer.token();
  // QueryAudit pages run newest first and have no seq filter: read back until `seq` is passed.
  let pageToken = '';
  do {
    const page = await connection.unary(
      rpcCodecs.QueryAudit,
      { ...queryRequest({}, new Date()), pageSize: PAGE_SIZE, pageToken },
      readSettings(token, 'audit show'),
    );
    const found = page.records.find((record) => record.seq === seq);
    if (found) return found;
    const oldest = page.records.at(-1);
    if (oldest === undefined || oldest.seq < seq) break;
    pageToken = page.nextPageToken;
  } while (pageToken);
  throw new McpError(
    'NOT_FOUND',
    `node ${node} has no audit record ${seq} that you may read: list records with \`mcp audit\` (a record of a call is the seq of its call, not of its outcome)`,
  );
}

/**
 * Calls every selected node's FollowAudit and hands each new row to `onRow` as the nodes
 * write them, until `signal` aborts. A node whose stream breaks is reported to `onFailure` and
 * reconnected after a pause, from the last row seen; a node that refuses the caller
 * (UNAUTHENTICATED, PERMISSION_DENIED) is reported and not asked again. Resolves once aborted,
 * or once every node has refused.
 */
export async function followAudit(
  review: AuditReviewContext,
  filters: Omit<AuditFilters, 'since' | 'limit'>,
  onRow: (row: AuditRow) => void,
  signal: AbortSignal,
  onFailure: (failure: NodeFailure) => void = () => {},
): Promise<void> {
  const nodes = selectNodes(review.fleet, filters.nodes);
  const base = queryRequest(filters, new Date());
  await Promise.all(
    nodes.map(async (node) => {
      const connection = review.pool.connection(node.name);
      let afterSeq = 0;
      let pauseMs = FOLLOW_RETRY_FIRST_MS;
      while (!signal.aborted) {
        try {
          const token = await review.bearer.token();
          await connection.stream(
            rpcCodecs.FollowAudit,
            {
              afterSeq,
              subject: base.subject,
              rpc: base.rpc,
              service: base.service,
              decision: base.decision,
            },
            { ...readSettings(token, 'audit follow'), timeoutSeconds: FOLLOW_CALL_SECONDS, signal },
            async (message) => {
              pauseMs = FOLLOW_RETRY_FIRST_MS;
              for (const record of message.records) {
                afterSeq = Math.max(afterSeq, record.seq);
                onRow(toRow(record));
              }
            },
          );
        } catch (err) {
          if (signal.aborted) break;
          const error = toMcpError(err);
          // A call that reached its deadline simply starts again; anything else is worth saying.
          if (error.code !== 'DEADLINE_EXCEEDED') onFailure({ node: node.name, error });
          if (error.code === 'PERMISSION_DENIED' || error.code === 'UNAUTHENTICATED') return;
        }
        await pause(pauseMs, signal);
        pauseMs = Math.min(pauseMs * 2, FOLLOW_RETRY_MAX_MS);
      }
    }),
  );
}

/** A follow is one call; it is renewed after this long, so no deadline is unbounded. */
const FOLLOW_CALL_SECONDS = 6 * 3600;
const FOLLOW_RETRY_FIRST_MS = 1_000;
const FOLLOW_RETRY_MAX_MS = 30_000;

/** The anchors file: heads noted per node, oldest first. */
export interface AuditAnchors {
  version: 1;
  nodes: Record<string, AnchoredHead[]>;
}

export interface AnchoredHead {
  seq: number;
  hash: string;
  /** When it was noted (RFC 3339). */
  anchoredAt: string;
}

/** Anchors kept per node: the newest implies the older ones, a few more help a reader. */
const ANCHORS_KEPT = 50;

/** The anchors file in the CLI's state directory (`localHomeDir()`: `$MCP_HOME`, else `~/.local/state/mcp`). */
export function defaultAnchorsFile(stateDir: string): string {
  return join(stateDir, 'audit-anchors.json');
}

export interface NodeVerification {
  node: string;
  ok: boolean;
  /** Records checked (0 when not ok). */
  count: number;
  head: { seq: number; hash: string };
  /** Anchors from the file the node was checked against. */
  anchorsChecked: number;
  /** First record that does not hold; 0 when ok. */
  failedSeq: number;
  reason: string;
}

export interface AuditVerification {
  /** Every node answered and every chain holds. */
  ok: boolean;
  nodes: NodeVerification[];
  failures: NodeFailure[];
}

/** Each selected node's chain verified, against the anchors noted for it in `anchorsFile`. */
export async function verifyAuditAcrossNodes(
  review: AuditReviewContext,
  anchorsFile: string,
  options: { nodes?: readonly string[] } = {},
): Promise<AuditVerification> {
  const anchors = await readAnchors(anchorsFile);
  const { results, failures } = await eachNode(review, options.nodes, (connection, token) =>
    verifyNode(connection, token, anchors.nodes[connection.node.name] ?? []),
  );
  const nodes = results.map(({ value }) => value);
  return { ok: failures.length === 0 && nodes.every((n) => n.ok), nodes, failures };
}

/**
 * Verifies each selected node (against its anchors so far) and, where the chain holds, notes
 * its head in `anchorsFile`. A node that fails keeps its old anchors and gets no new one.
 */
export async function anchorAudit(
  review: AuditReviewContext,
  anchorsFile: string,
  options: { nodes?: readonly string[]; now?: Date } = {},
): Promise<AuditVerification> {
  const anchors = await readAnchors(anchorsFile);
  const verification = await verifyAuditAcrossNodes(review, anchorsFile, options);
  const anchoredAt = (options.now ?? new Date()).toISOString();
  for (const node of verification.nodes) {
    if (!node.ok || node.head.seq === 0) continue;
    const kept = anchors.nodes[node.node] ?? [];
    if (kept.at(-1)?.seq !== node.head.seq) kept.push({ ...node.head, anchoredAt });
    anchors.nodes[node.node] = kept.slice(-ANCHORS_KEPT);
  }
  await writeAnchors(anchorsFile, anchors);
  return verification;
}

/**
 * Every record of the selected nodes at or after `since`, oldest first, one AuditRecord
 * (ProtoJSON) per line, each ending in '\n', passed to `write`. Returns the number of lines.
 */
export async function exportAudit(
  review: AuditReviewContext,
  since: Date | string,
  write: (line: string) => void | Promise<void>,
  options: { nodes?: readonly string[] } = {},
): Promise<{ count: number; failures: NodeFailure[] }> {
  const request = queryRequest({ since }, new Date());
  const { results, failures } = await eachNode(review, options.nodes, (connection, token) =>
    readPages(connection, token, request, Number.POSITIVE_INFINITY),
  );
  const records = results.flatMap(({ value }) => value).sort(byTime);
  for (const record of records) await write(`${JSON.stringify(AuditRecordCodec.toJSON(record))}\n`);
  return { count: records.length, failures };
}

/** `90s`, `15m`, `1h`, `7d` (or an RFC 3339 time) as the time that long before `now`. */
export function parseSince(since: Date | string, now: Date): Date {
  if (since instanceof Date) {
    if (Number.isNaN(since.getTime())) throw new InvalidArgumentError('since is not a valid time');
    return since;
  }
  const duration = /^(\d+)([smhd])$/.exec(since.trim());
  if (duration) {
    const unitMs = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now.getTime() - Number(duration[1]) * unitMs);
  }
  const time = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?$/.test(since.trim())
    ? new Date(since.trim())
    : undefined;
  if (time && !Number.isNaN(time.getTime())) return time;
  throw new InvalidArgumentError(
    `since "${since}" is neither a duration nor a time: give e.g. 90s, 15m, 1h, 7d, or 2026-11-30T12:00:00Z`,
  );
}

// ---------------------------------------------------------------------------------------------

function queryRequest(filters: Omit<AuditFilters, 'nodes' | 'limit'>, now: Date): QueryAuditRequest {
  return {
    since: filters.since === undefined ? undefined : parseSince(filters.since, now),
    until: undefined,
    subject: filters.caller ?? '',
    rpc: filters.tool === undefined ? '' : rpcOf(filters.tool),
    service: filters.service ?? '',
    decision: filters.decision === undefined ? 0 : decisionOf(filters.decision),
    outcome: 0,
    pageSize: PAGE_SIZE,
    pageToken: '',
  };
}

/** A tool name or an RPC name, as the RPC name the audit log records. */
function rpcOf(tool: string): string {
  const byTool = tools.find((t) => t.name === tool);
  if (byTool) return byTool.rpc;
  if (tool in rpcCodecs) return tool;
  throw new InvalidArgumentError(
    `"${tool}" is neither a tool nor an RPC: give a tool name such as ${tools
      .slice(0, 3)
      .map((t) => t.name)
      .join(', ')} (\`mcp tools\` lists them) or an RPC name such as Deploy`,
  );
}

function decisionOf(decision: string): ReturnType<typeof auditDecisionToProto> {
  if (!(AUDIT_DECISION_NAMES as readonly string[]).includes(decision)) {
    throw new InvalidArgumentError(
      `decision must be one of ${AUDIT_DECISION_NAMES.join(', ')}, not "${decision}"`,
    );
  }
  return auditDecisionToProto(decision as AuditDecisionName);
}

function checkedLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new InvalidArgumentError(`limit must be a whole number >= 1, not ${limit}`);
  }
  return limit;
}

function readSettings(token: string, tool: string): CallSettings {
  return { token, timeoutSeconds: QUERY_TIMEOUT_SECONDS, readOnly: true, tool };
}

/** Up to `limit` newest matching records of one node, following its pages. */
async function readPages(
  connection: AgentConnection,
  token: string,
  request: QueryAuditRequest,
  limit: number,
): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  let pageToken = '';
  do {
    const pageSize = Math.min(PAGE_SIZE, limit - records.length);
    const page = await connection.unary(
      rpcCodecs.QueryAudit,
      { ...request, pageSize, pageToken },
      readSettings(token, 'audit'),
    );
    records.push(...page.records);
    pageToken = page.nextPageToken;
  } while (pageToken && records.length < limit);
  return records;
}

async function verifyNode(
  connection: AgentConnection,
  token: string,
  anchors: readonly AnchoredHead[],
): Promise<NodeVerification> {
  const answer = await connection.unary(
    rpcCodecs.VerifyAudit,
    { anchors: anchors.map(({ seq, hash }): AuditAnchor => ({ seq, hash })) },
    readSettings(token, 'audit verify'),
  );
  return {
    node: connection.node.name,
    ok: answer.ok,
    count: answer.count,
    head: { seq: answer.head?.seq ?? 0, hash: answer.head?.hash ?? '' },
    anchorsChecked: anchors.length,
    failedSeq: answer.failedSeq,
    reason: answer.reason,
  };
}

function selectNodes(fleet: Fleet, names: readonly string[] | undefined): NodeConfig[] {
  if (names === undefined || names.length === 0) return fleet.allNodes();
  return names.map((name) => fleet.node(name));
}

/** Runs `read` on every selected node at once; a node's failure goes to `failures`. */
async function eachNode<T>(
  review: AuditReviewContext,
  names: readonly string[] | undefined,
  read: (connection: AgentConnection, token: string) => Promise<T>,
): Promise<{ results: { node: string; value: T }[]; failures: NodeFailure[] }> {
  const nodes = selectNodes(review.fleet, names);
  const token = await review.bearer.token();
  const settled = await Promise.allSettled(
    nodes.map((node) => read(review.pool.connection(node.name), token)),
  );
  const results: { node: string; value: T }[] = [];
  const failures: NodeFailure[] = [];
  settled.forEach((outcome, index) => {
    const node = nodes[index]?.name ?? '';
    if (outcome.status === 'fulfilled') results.push({ node, value: outcome.value });
    else failures.push({ node, error: toMcpError(outcome.reason) });
  });
  return { results, failures };
}

function toRow(record: AuditRecord): AuditRow {
  return {
    time: record.time ?? new Date(0),
    node: record.node,
    seq: record.seq,
    caller: record.subject,
    tool: record.tool || record.rpc,
    service: record.service,
    decision: auditDecisionFromProto(record.decision) ?? 'allow',
    outcome: auditOutcomeFromProto(record.outcome) ?? 'unknown',
    errorCode: record.errorCode,
    durationMs: record.durationMs,
  };
}

/** Oldest first; ties (same millisecond) by node, then seq. */
function byTime(a: { time?: Date; node: string; seq: number }, b: typeof a): number {
  return (a.time?.getTime() ?? 0) - (b.time?.getTime() ?? 0) || a.node.localeCompare(b.node) || a.seq - b.seq;
}

async function readAnchors(file: string): Promise<AuditAnchors> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, nodes: {} };
    throw new McpError(
      'FAILED_PRECONDITION',
      `${file}: cannot read the audit anchors: ${(err as Error).message}`,
    );
  }
  const damaged = (what: string) =>
    new McpError(
      'FAILED_PRECONDITION',
      `${file}: ${what}: the anchors file was changed outside mcp; restore it from a copy (it is what proves the nodes' logs were not cut short)`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw damaged('not JSON');
  }
  if (!isRecord(parsed) || parsed.version !== 1 || !isRecord(parsed.nodes))
    throw damaged('not an anchors file');
  const nodes: Record<string, AnchoredHead[]> = {};
  for (const [node, heads] of Object.entries(parsed.nodes)) {
    if (!Array.isArray(heads)) throw damaged(`the anchors of node ${node} are not a list`);
    nodes[node] = heads.map((head) => {
      if (
        !isRecord(head) ||
        !Number.isSafeInteger(head.seq) ||
        typeof head.hash !== 'string' ||
        !/^[0-9a-f]{64}$/.test(head.hash) ||
        typeof head.anchoredAt !== 'string'
      ) {
        throw damaged(`an anchor of node ${node} is not {seq, hash, anchoredAt}`);
      }
      return { seq: head.seq as number, hash: head.hash, anchoredAt: head.anchoredAt };
    });
  }
  return { version: 1, nodes };
}

/** Replaces the file whole (write aside, then rename), mode 0600 in a 0700 directory. */
async function writeAnchors(file: string, anchors: AuditAnchors): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const aside = `${file}.${process.pid}.tmp`;
  await writeFile(aside, `${JSON.stringify(anchors, null, 2)}\n`, { mode: 0o600 });
  await rename(aside, file);
}
