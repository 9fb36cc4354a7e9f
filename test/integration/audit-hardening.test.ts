/**
 * Audit hardening through the real agent (real TLS gRPC, real tokens, the guard): reads filtered
 * to the reader's RBAC scope; the append-only triggers recreated at start; the chain head logged
 * and checked against anchors by `mcp-agent audit verify --anchor` (the built CLI, so run
 * `npm run build` first).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Metadata, status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McpAgentServiceClient, QueryAuditRequest, QueryAuditResponse } from '../../gen/mcp/v1/mcp.js';
import { startTestAgent, type TestAgent, unary } from '../support/agent.js';

const repo = new URL('../..', import.meta.url).pathname;
const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));

function request(filter: Partial<QueryAuditRequest> = {}): QueryAuditRequest {
  return {
    since: undefined,
    until: undefined,
    subject: '',
    rpc: '',
    service: '',
    decision: 0,
    outcome: 0,
    pageSize: 0,
    pageToken: '',
    ...filter,
  };
}

async function readAll(client: McpAgentServiceClient, md: Metadata, filter: Partial<QueryAuditRequest> = {}) {
  const records: QueryAuditResponse['records'] = [];
  let pageToken = '';
  do {
    const page: QueryAuditResponse = await unary(
      client.queryAudit.bind(client),
      request({ pageSize: 4, ...filter, pageToken }),
      md,
    );
    if (page.nextPageToken) expect(page.records).toHaveLength(4);
    records.push(...page.records);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return records;
}

describe('audit reads respect the reader scope', () => {
  let agent: TestAgent;
  let client: McpAgentServiceClient;

  beforeAll(async () => {
    agent = await startTestAgent({
      node: 'node1',
      rbac: {
        roles: [
          { name: 'web-auditor', permissions: ['audit.query'], services: ['web-*'] },
          // Limited to other nodes: it does not exist on node1, so it widens nothing here.
          { name: 'edge-auditor', permissions: ['audit.query'], nodes: ['edge-*'] },
        ],
      },
    });
    client = agent.client();
    const operator = await agent.auth({ roles: ['operator'], subject: 'ops' });
    const viewer = await agent.auth({ roles: ['viewer'], subject: 'intruder' });
    const stop = (service: string, md: Metadata) =>
      unary(client.stopService.bind(client), { service, component: '', requestId: '' }, md).catch(
        (e: { code: number }) => e.code,
      );
    // Allowed calls (NOT_FOUND from the handler) and refusals, on both sides of the scope.
    for (let i = 0; i < 5; i++) {
      expect(await stop(`web-${i}`, operator)).toBe(status.NOT_FOUND);
      expect(await stop(`db-${i}`, operator)).toBe(status.NOT_FOUND);
    }
    expect(await stop('db-secret-name', viewer)).toBe(status.PERMISSION_DENIED);
    expect(await stop('web-probe', viewer)).toBe(status.PERMISSION_DENIED);
    await unary(client.nodeStatus.bind(client), {}, operator);
  });
  afterAll(() => agent?.stop());

  it('gives a web-* auditor only web-* records, in full pages, and nothing without a service', async () => {
    const md = await agent.auth({ roles: ['web-auditor', 'edge-auditor'], subject: 'web-reader' });
    const records = await readAll(client, md);
    const services = records.map((r) => r.service);
    expect(services.length).toBeGreaterThanOrEqual(6);
    expect(services.every((s) => s.startsWith('web-'))).toBe(true);
    expect(services).toContain('web-probe');
    expect(services).not.toContain('db-secret-name');
    expect(records.some((r) => r.rpc === 'NodeStatus')).toBe(false);
    // A filter on a service outside the scope finds nothing rather than leaking it.
    expect(await readAll(client, md, { service: 'db-1' })).toEqual([]);
  });

  it('gives an unscoped auditor every record, including the ones naming no service', async () => {
    const md = await agent.auth({ roles: ['auditor'], subject: 'full-reader' });
    const records = await readAll(client, md);
    const services = records.map((r) => r.service);
    expect(services).toContain('db-secret-name');
    expect(services).toContain('web-3');
    expect(records.some((r) => r.rpc === 'NodeStatus' && r.service === '')).toBe(true);
  });

  it('refuses a page size over the limit with INVALID_ARGUMENT', async () => {
    const md = await agent.auth({ roles: ['auditor'] });
    await expect(unary(client.queryAudit.bind(client), request({ pageSize: 501 }), md)).rejects.toMatchObject(
      { code: status.INVALID_ARGUMENT },
    );
  });
});
