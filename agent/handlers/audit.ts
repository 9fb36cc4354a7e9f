import { InvalidArgumentError } from '../../core/errors.js';
import { auditDecisionFromProto, auditOutcomeFromProto } from '../../core/states.js';
import type { QueryAuditRequest, QueryAuditResponse } from '../../gen/mcp/v1/mcp.js';
import { toAuditRecord } from '../../registry/audit.js';
import type { CallContext } from '../server.js';
import type { HandlerDeps } from './deps.js';

const MAX_PAGE_SIZE = 500;

export function auditHandlers({ registry }: HandlerDeps) {
  return {
    async queryAudit(req: QueryAuditRequest, _ctx: CallContext): Promise<QueryAuditResponse> {
      if (req.pageSize > MAX_PAGE_SIZE) {
        throw new InvalidArgumentError(
          `pageSize ${req.pageSize} is over the limit of ${MAX_PAGE_SIZE}: ask for fewer and page`,
        );
      }
      const page = registry.audit.query({
        since: req.since,
        until: req.until,
        subject: req.subject || undefined,
        rpc: req.rpc || undefined,
        service: req.service || undefined,
        decision: auditDecisionFromProto(req.decision),
        outcome: auditOutcomeFromProto(req.outcome),
        pageSize: req.pageSize || undefined,
        pageToken: req.pageToken || undefined,
      });
      return { records: page.records.map(toAuditRecord), nextPageToken: page.nextPageToken ?? '' };
    },
  };
}
