/**
 * `mcp audit` as library calls (connector/audit-review.ts) against two real agents on their
 * own databases: filters and the merge across nodes, one record in full, a follow that sees a
 * call made by another client, JSON-lines export, and anchors that catch a log whose newest
 * records were removed while its agent was down (a chain cut short is otherwise consistent).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentPool } from '../../connector/agent-client.js';
import {
  type AuditReviewContext,
  type AuditRow,
  anchorAudit,
  exportAudit,
  followAudit,
  queryAuditAcrossNodes,
  showAuditRecord,
  verifyAuditAcrossNodes,
} from '../../connector/audit-review.js';
import { parseConnectorConfig } from '../../connector/config.js';
import { Fleet } from '../../connector/routing.js';
import { silentLogger } from '../../core/log.js';
import { QueryAuditRequest } from '../../gen/mcp/v1/mcp.js';
import { startTestAgent, type TestAgent, unary } from '../support/agent.js';
import {
  type ConnectorFiles,
  connectInProcess,
  type InProcessConnector,
  writeConnectorConfig,
} from '../support/connector.js';
import { eventually } from '../support/eventually.js';

describe('audit review across nodes', () => {
  const dataDirs = { a: '', b: '' };
  let nodeA: TestAgent;
  let nodeB: TestAgent;
  let files: ConnectorFiles;
  let pool: AgentPool;
  let review: AuditReviewContext;
  /** Another client of the fleet: an operator's connector. */
  let operator: InProcessConnector;
  let stateDir: string;

  /** The review's view of the fleet as it runs now (addresses change when an agent restarts). */
  function connect(): void {
    pool?.close();
    files?.remove();
    files = writeConnectorConfig([
      { name: nodeA.node, address: nodeA.address, caPem: nodeA.caPem },
      { name: nodeB.node, address: nodeB.address, caPem: nodeB.caPem },
    ]);
    const config = parseConnectorConfig(readFileSync(files.configFile, 'utf8'), files.configFile, {
      HOME: tmpdir(),
    });
    pool = new AgentPool(config.nodes, { log: silentLogger, retry: { retries: 1, baseDelayMs: 50 } });
    review = {
      fleet: new Fleet(config),
      pool,
      bearer: {
        description: 'an auditor token',
        token: () => nodeA.token({ subject: 'auditor-1', roles: ['auditor'] }),
      },
    };
  }

  beforeAll(async () => {
    dataDirs.a = mkdtempSync(join(tmpdir(), 'mcp-audit-review-a-'));
    dataDirs.b = mkdtempSync(join(tmpdir(), 'mcp-audit-review-b-'));
    stateDir = mkdtempSync(join(tmpdir(), 'mcp-audit-review-state-'));
    nodeA = await startTestAgent({ node: 'node-a', dataDir: dataDirs.a });
    nodeB = await startTestAgent({ node: 'node-b', dataDir: dataDirs.b });
    connect();
    operator = await connectInProcess(files.configFile, {
      token: await nodeA.token({ subject: 'operator-1', roles: ['operator'] }),
    });
    // What the review will find: a list on node-a, a status on node-b, and a refused read on node-a.
    await operator.client.callTool({ name: 'list_services', arguments: { node: 'node-a' } });
    await operator.client.callTool({ name: 'node_status', arguments: { node: 'node-b' } });
    const viewer = nodeA.client();
    await unary(
      viewer.queryAudit.bind(viewer),
      QueryAuditRequest.fromPartial({}),
      await nodeA.auth({ subject: 'viewer-1', roles: ['viewer'] }),
    ).catch(() => undefined);
  });

  afterAll(async () => {
    await operator?.close();
    pool?.close();
    files?.remove();
    await nodeA?.stop();
    await nodeB?.stop();
    for (const dir of [dataDirs.a, dataDirs.b, stateDir])
      if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('merges the nodes by time and filters by tool, caller, decision, node and time', async () => {
    const all = await queryAuditAcrossNodes(review);
    expect(all.failures).toEqual([]);
    expect(new Set(all.rows.map((r) => r.node))).toEqual(new Set(['node-a', 'node-b']));
    const times = all.rows.map((r) => r.time.getTime());
    expect(times).toEqual([...times].sort((x, y) => x - y));

    const lists = await queryAuditAcrossNodes(review, { tool: 'list_services' });
    expect(lists.rows).toEqual([
      expect.objectContaining({ node: 'node-a', tool: 'list_services', caller: 'operator-1', outcome: 'ok' }),
    ]);
    // The RPC name selects the same calls as the tool name.
    expect((await queryAuditAcrossNodes(review, { tool: 'ListServices' })).rows).toEqual(lists.rows);

    const refused = await queryAuditAcrossNodes(review, { caller: 'viewer-1', decision: 'deny' });
    expect(refused.rows).toEqual([
      expect.objectContaining({
        node: 'node-a',
        tool: 'query_audit',
        decision: 'deny',
        outcome: 'error',
        errorCode: 'PERMISSION_DENIED',
      }),
    ]);

    const onB = await queryAuditAcrossNodes(review, { nodes: ['node-b'] });
    expect(onB.rows.length).toBeGreaterThan(0);
    expect(onB.rows.every((r) => r.node === 'node-b')).toBe(true);

    expect((await queryAuditAcrossNodes(review, { since: new Date(Date.now() + 60_000) })).rows).toEqual([]);
    expect((await queryAuditAcrossNodes(review, { since: '1h', tool: 'node_status' })).rows).toHaveLength(1);

    const newest = await queryAuditAcrossNodes(review, { limit: 2 });
    expect(newest.rows).toHaveLength(2);
    const everything = (await queryAuditAcrossNodes(review, { limit: 1000 })).rows;
    // The two most recent of the earlier read (the reads in between are newer still).
    expect(everything.map((r) => `${r.node}/${r.seq}`)).toEqual(
      expect.arrayContaining(newest.rows.map((r) => `${r.node}/${r.seq}`)),
    );
  });

  it('refuses filters it cannot apply, naming what to give instead', async () => {
    await expect(queryAuditAcrossNodes(review, { tool: 'deploy_everything' })).rejects.toThrow(
      /neither a tool nor an RPC/,
    );
    await expect(queryAuditAcrossNodes(review, { since: 'yesterday' })).rejects.toThrow(
      /e\.g\. 90s, 15m, 1h/,
    );
    await expect(queryAuditAcrossNodes(review, { nodes: ['node-z'] })).rejects.toThrow(
      /unknown node "node-z"/,
    );
  });

  it('shows one record whole, hashes included', async () => {
    const [row] = (await queryAuditAcrossNodes(review, { tool: 'node_status' })).rows;
    if (!row) throw new Error('no node_status record');
    const record = await showAuditRecord(review, row.node, row.seq);
    expect(record).toMatchObject({ seq: row.seq, node: 'node-b', subject: 'operator-1', rpc: 'NodeStatus' });
    expect(record.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(record.prevHash).toMatch(/^[0-9a-f]{64}$/);
    await expect(showAuditRecord(review, 'node-b', 999_999)).rejects.toThrow(/no audit record 999999/);
  });

  it('follows both nodes and sees a call another client makes, with its outcome', async () => {
    const seen: AuditRow[] = [];
    const stop = new AbortController();
    const following = followAudit(review, {}, (row) => seen.push(row), stop.signal);
    try {
      // Both follows are open once each node has recorded its FollowAudit call.
      await eventually(
        'both follows to start',
        async () => {
          const { rows } = await queryAuditAcrossNodes(review, { tool: 'FollowAudit', since: '1m' });
          return new Set(rows.map((r) => r.node)).size === 2 ? true : undefined;
        },
        { seconds: 15 },
      );
      await operator.client.callTool({ name: 'node_status', arguments: { node: 'node-b' } });
      await operator.client.callTool({
        name: 'service_status',
        arguments: { node: 'node-a', service: 'web' },
      });
      const statusRow = await eventually(
        'the follow to see node_status on node-b',
        async () =>
          seen.find((r) => r.node === 'node-b' && r.tool === 'node_status' && r.caller === 'operator-1'),
        { seconds: 15 },
      );
      expect(statusRow.outcome).toBe('ok');
      const serviceRow = await eventually(
        'the follow to see service_status on node-a',
        async () => seen.find((r) => r.node === 'node-a' && r.tool === 'service_status'),
        { seconds: 15 },
      );
      expect(serviceRow).toMatchObject({ service: 'web', caller: 'operator-1' });
      // The follow's own calls are not sent to it, and nothing is sent twice.
      expect(seen.some((r) => r.tool === 'FollowAudit')).toBe(false);
      const keys = seen.map((r) => `${r.node}/${r.seq}`);
      expect(new Set(keys).size).toBe(keys.length);
    } finally {
      stop.abort();
      await following;
    }
    // One audit record per node for the whole follow, however long it ran.
    const follows = await queryAuditAcrossNodes(review, { tool: 'FollowAudit' });
    expect(follows.rows.map((r) => r.node).sort()).toEqual(['node-a', 'node-b']);
  });

  it('exports every record since a time as JSON lines, oldest first', async () => {
    const lines: string[] = [];
    const { count, failures } = await exportAudit(review, '1h', (line) => {
      lines.push(line);
    });
    expect(failures).toEqual([]);
    expect(count).toBe(lines.length);
    expect(lines.every((line) => line.endsWith('\n'))).toBe(true);
    const records = lines.map(
      (line) => JSON.parse(line) as { node: string; seq: number; time: string; hash: string },
    );
    expect(new Set(records.map((r) => r.node))).toEqual(new Set(['node-a', 'node-b']));
    expect(records.every((r) => /^[0-9a-f]{64}$/.test(r.hash))).toBe(true);
    const times = records.map((r) => Date.parse(r.time));
    expect(times).toEqual([...times].sort((x, y) => x - y));
  });

  it('anchors each head in a 0600 file and then detects a tail removed while the agent was down', async () => {
    const anchorsFile = join(stateDir, 'audit-anchors.json');
    const anchored = await anchorAudit(review, anchorsFile);
    expect(anchored.ok).toBe(true);
    expect(statSync(anchorsFile).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(anchorsFile, 'utf8')) as {
      nodes: Record<string, { seq: number; hash: string }[]>;
    };
    const headB = saved.nodes['node-b']?.at(-1);
    expect(headB?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(saved.nodes['node-a']).toHaveLength(1);

    const verified = await verifyAuditAcrossNodes(review, anchorsFile);
    expect(verified.ok).toBe(true);
    expect(verified.nodes.map((n) => [n.node, n.ok, n.anchorsChecked])).toEqual([
      ['node-a', true, 1],
      ['node-b', true, 1],
    ]);

    // Someone with the database stops node-b, deletes its newest records (enough that the calls
    // below do not reach the anchored seq again), starts it again.
    const anchoredSeq = headB?.seq ?? 0;
    expect(anchoredSeq).toBeGreaterThan(20);
    await nodeB.stop();
    const db = new Database(join(dataDirs.b, 'registry.db'));
    try {
      db.exec('DROP TRIGGER IF EXISTS audit_log_no_delete');
      db.prepare('DELETE FROM audit_log WHERE seq >= ?').run(anchoredSeq - 12);
    } finally {
      db.close();
    }
    nodeB = await startTestAgent({ node: 'node-b', dataDir: dataDirs.b });
    connect();

    // Without anchors the shortened chain is consistent: nothing to see.
    const unanchored = await verifyAuditAcrossNodes(review, join(stateDir, 'no-anchors.json'));
    expect(unanchored.ok).toBe(true);
    expect(existsSync(join(stateDir, 'no-anchors.json'))).toBe(false);

    const caught = await verifyAuditAcrossNodes(review, anchorsFile);
    expect(caught.ok).toBe(false);
    const [a, b] = caught.nodes;
    expect(a).toMatchObject({ node: 'node-a', ok: true });
    expect(b).toMatchObject({ node: 'node-b', ok: false });
    expect(b?.reason).toMatch(/an anchor names record .*tail was truncated/);

    // A failing node gets no new anchor; the old one stays to keep proving the loss.
    const again = await anchorAudit(review, anchorsFile);
    expect(again.ok).toBe(false);
    const after = JSON.parse(readFileSync(anchorsFile, 'utf8')) as typeof saved;
    expect(after.nodes['node-b']).toEqual(saved.nodes['node-b']);
    expect(after.nodes['node-a']).toHaveLength(2);
  });
});
