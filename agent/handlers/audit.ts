/**
 * The audit RPCs. QueryAudit: the audit log read back over gRPC, filtered to what the caller's
 * role covers (`ctx.scope`, computed by RBAC for `audit.query` on this node). VerifyAudit: the
 * hash chain recomputed here, against anchors the caller noted off the node. FollowAudit: new
 * records as they are written, in one long call, so a follower adds one audit record for the
 * whole follow instead of one per poll. The registry returns its own record type; the
 * conversion to the contract's AuditRecord happens here, once.
 */

import { InvalidArgumentError } from '../../core/errors.js';
import { pause } from '../../core/pause.js';
import {
  auditDecisionFromProto,
  auditDecisionToProto,
  auditOutcomeFromProto,
  auditOutcomeToProto,
} from '../../core/states.js';
import type {
  AuditRecord,
  FollowAuditRequest,
  FollowAuditResponse,
  QueryAuditRequest,
  QueryAuditResponse,
  VerifyAuditRequest,
  VerifyAuditResponse,
} from '../../gen/mcp/v1/mcp.js';
import { type AuditEntry, type AuditQuery, MAX_AUDIT_PAGE_SIZE } from '../../registry/audit.js';
import type { Registry } from '../../registry/db.js';
import type { CallContext } from '../server.js';
import type { HandlerDeps } from './deps.js';

export function auditHandlers({ registry }: HandlerDeps) {
  return {
    async queryAudit(req: QueryAuditRequest, ctx: CallContext): Promise<QueryAuditResponse> {
      const page = registry.audit.query({
        since: req.since,
        until: req.until,
        subject: req.subject || undefined,
        rpc: req.rpc || undefined,
        service: req.service || undefined,
        decision: auditDecisionFromProto(req.decision),
        outcome: auditOutcomeFromProto(req.outcome),
        scope: ctx.scope,
        pageSize: req.pageSize || undefined,
        pageToken: req.pageToken || undefined,
      });
      return { records: page.records.map(toAuditRecord), nextPageToken: page.nextPageToken };
    },

    async verifyAudit(req: VerifyAuditRequest): Promise<VerifyAuditResponse> {
      const anchors = req.anchors.map((anchor, index) => {
        if (!Number.isSafeInteger(anchor.seq) || anchor.seq < 1 || !/^[0-9a-fA-F]{64}$/.test(anchor.hash)) {
          throw new InvalidArgumentError(
            `anchors[${index}] is not a record number >= 1 with a 64-hex-digit hash: pass heads as VerifyAudit or the agent's "audit head" log lines give them`,
          );
        }
        return { seq: anchor.seq, hash: anchor.hash };
      });
      const result = registry.audit.verifyChain(anchors);
      const head = registry.audit.head();
      return result.ok
        ? { ok: true, count: result.count, head, failedSeq: 0, reason: '' }
        : { ok: false, count: 0, head, failedSeq: result.seq, reason: result.reason };
    },

    async followAudit(
      req: FollowAuditRequest,
      ctx: CallContext,
      send: (msg: FollowAuditResponse) => Promise<void>,
    ): Promise<void> {
      // The guard wrote this call's own record just before the handler started (synchronously,
      // in this process), so the head is that record: it stays `unknown` until the follow ends
      // and is never sent to the follower.
      const ownSeq = registry.audit.head().seq;
      let cursor = req.afterSeq > 0 ? req.afterSeq : ownSeq;
      const filters: AuditQuery = {
        subject: req.subject || undefined,
        rpc: req.rpc || undefined,
        service: req.service || undefined,
        decision: auditDecisionFromProto(req.decision),
        scope: ctx.scope,
      };
      while (!ctx.signal.aborted) {
        const { ready, nextCursor } = completedAfter(registry, filters, cursor, ownSeq, Date.now());
        cursor = nextCursor;
        if (ready.length > 0) await send({ records: ready.map(toAuditRecord) });
        await pause(FOLLOW_POLL_MS, ctx.signal);
      }
    },
  };
}

/** How often a follow looks at the local log: a read of this node's database, not a call. */
const FOLLOW_POLL_MS = 250;
/**
 * A call still running is held back so the follower sees it with its outcome; one that runs
 * longer than this is sent as `unknown` (a deploy can take minutes) and the follow goes on.
 */
const FOLLOW_HOLD_MS = 5_000;

/**
 * The records after `cursor`, oldest first, up to the first call still running (unless it
 * has run longer than FOLLOW_HOLD_MS), and the cursor to continue from.
 */
function completedAfter(
  registry: Registry,
  filters: AuditQuery,
  cursor: number,
  ownSeq: number,
  now: number,
): { ready: AuditEntry[]; nextCursor: number } {
  const newer: AuditEntry[] = [];
  let pageToken: string | undefined;
  do {
    const page = registry.audit.query({ ...filters, pageSize: MAX_AUDIT_PAGE_SIZE, pageToken });
    const fresh = page.records.filter((entry) => entry.seq > cursor);
    newer.push(...fresh);
    pageToken = fresh.length === page.records.length && page.nextPageToken ? page.nextPageToken : undefined;
  } while (pageToken);
  newer.reverse();
  const ready: AuditEntry[] = [];
  let nextCursor = cursor;
  for (const entry of newer) {
    if (entry.seq === ownSeq) {
      nextCursor = entry.seq;
      continue;
    }
    const running = entry.outcome === 'unknown' && now - entry.time.getTime() < FOLLOW_HOLD_MS;
    if (running) break;
    ready.push(entry);
    nextCursor = entry.seq;
  }
  return { ready, nextCursor };
}

/** One call of the registry's log as the contract's AuditRecord. */
export function toAuditRecord(entry: AuditEntry): AuditRecord {
  return {
    seq: entry.seq,
    time: entry.time,
    node: entry.node,
    issuer: entry.issuer,
    subject: entry.subject,
    clientId: entry.clientId,
    roles: [...entry.roles],
    rpc: entry.rpc,
    tool: entry.tool,
    service: entry.service,
    component: entry.component,
    argsSha256: entry.argsSha256,
    confirmation: entry.confirmation,
    decision: auditDecisionToProto(entry.decision),
    outcome: auditOutcomeToProto(entry.outcome),
    errorCode: entry.errorCode,
    durationMs: entry.durationMs,
    requestId: entry.requestId,
    prevHash: entry.prevHash,
    hash: entry.hash,
  };
}
