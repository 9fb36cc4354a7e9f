/**
 * QueryAudit: the audit log read back over gRPC, filtered to what the caller's role covers
 * (`ctx.scope`, computed by RBAC for `audit.query` on this node). The registry returns its own
 * record type; the conversion to the contract's AuditRecord happens here, once.
 */
import {
  auditDecisionFromProto,
  auditDecisionToProto,
  auditOutcomeFromProto,
  auditOutcomeToProto,
} from '../../core/states.js';
import type { AuditRecord, QueryAuditRequest, QueryAuditResponse } from '../../gen/mcp/v1/mcp.js';
import type { AuditEntry } from '../../registry/audit.js';
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
  };
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
