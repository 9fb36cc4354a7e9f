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
import { credentials, type Metadata, status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  McpAgentServiceClient,
  type QueryAuditRequest,
  type QueryAuditResponse,
} from '../../gen/mcp/v1/mcp.js';
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

interface AgentProcess {
  port: number;
  /** Every JSON log line so far. */
  lines: Array<Record<string, unknown>>;
  client(): McpAgentServiceClient;
  stop(): Promise<void>;
}

/** The built agent on an existing config, with its log read line by line (start-up lines included). */
async function runAgentProcess(base: TestAgent): Promise<AgentProcess> {
  const child = spawn(
    process.execPath,
    [path.join(repo, 'dist/agent/main.js'), 'server', '--config', base.configFile],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: Array<Record<string, unknown>> = [];
  let buffer = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const complete = buffer.split('\n');
    buffer = complete.pop() ?? '';
    for (const line of complete) if (line.startsWith('{')) lines.push(JSON.parse(line));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitFor(() => lines.some((l) => l.msg === 'agent started') || child.exitCode !== null, 20_000);
  const started = lines.find((l) => l.msg === 'agent started');
  if (!started) throw new Error(`agent did not start: ${stderr}`);
  const port = started.port as number;
  const clients: McpAgentServiceClient[] = [];
  return {
    port,
    lines,
    client: () => {
      const c = new McpAgentServiceClient(
        `127.0.0.1:${port}`,
        credentials.createSsl(Buffer.from(base.caPem)),
      );
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const c of clients) c.close();
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe.skipIf(!built && !process.env.CI)('the audit tail: triggers, logged heads and anchors', () => {
  let dataDir: string;
  let base: TestAgent;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-audit-tail-'));
    // In-process first, to write the config, certificates and a database with some records.
    base = await startTestAgent({
      dataDir,
      settings: { log_level: 'info', audit: { anchor_interval_seconds: 1 } },
    });
    const client = base.client();
    const md = await base.auth({ roles: ['viewer'] });
    for (let i = 0; i < 5; i++) await unary(client.listServices.bind(client), { desiredState: 0 }, md);
    await base.stop();
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  const verify = (...anchors: string[]) => {
    try {
      const out = execFileSync(
        process.execPath,
        [
          path.join(repo, 'dist/agent/main.js'),
          'audit',
          'verify',
          '--config',
          base.configFile,
          ...anchors.flatMap((a) => ['--anchor', a]),
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      return { code: 0, out };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { code: e.status, out: e.stdout + e.stderr };
    }
  };

  const tamper = (sql: string) => {
    const db = new Database(base.database);
    try {
      db.exec('DROP TRIGGER IF EXISTS audit_log_no_delete; DROP TRIGGER IF EXISTS audit_log_no_update;');
      db.exec(sql);
    } finally {
      db.close();
    }
  };

  const triggers = () => {
    const db = new Database(base.database, { readonly: true });
    try {
      return (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all() as {
          name: string;
        }[]
      ).map((t) => t.name);
    } finally {
      db.close();
    }
  };

  it('recreates dropped triggers at start with one error line, and logs its head at start, every interval and at shutdown', async () => {
    tamper('SELECT 1');
    expect(triggers()).toEqual([]);
    const agent = await runAgentProcess(base);
    const repaired = agent.lines.filter((l) => String(l.msg).startsWith('audit log triggers'));
    expect(repaired).toHaveLength(1);
    expect(repaired[0]).toMatchObject({
      level: 'error',
      triggers: ['audit_log_no_update', 'audit_log_no_delete'],
    });
    expect(triggers()).toEqual(['audit_log_no_delete', 'audit_log_no_update']);

    const heads = () => agent.lines.filter((l) => l.msg === 'audit head');
    expect(heads()[0]).toMatchObject({ when: 'start', seq: 10 });
    const client = agent.client();
    const md = await base.auth({ roles: ['viewer'] });
    await unary(client.listServices.bind(client), { desiredState: 0 }, md);
    await waitFor(() => heads().some((h) => h.when === 'interval' && (h.seq as number) >= 12), 10_000);
    await agent.stop();
    const last = heads().at(-1) as { when: string; seq: number; hash: string; anchor: string };
    expect(last.when).toBe('shutdown');
    expect(last.anchor).toBe(`${last.seq}:${last.hash}`);

    // The anchors the journal now holds verify against the intact log.
    const result = verify(String(heads()[0]?.anchor), last.anchor);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/audit chain OK: \d+ records verified .*, 2 anchor\(s\) hold/);
  }, 60_000);

  it('fails verify --anchor when the newest records are deleted or every row is, which the chain alone passes', () => {
    const head = verify().out.match(/head: (\d+:[0-9a-f]{64})/)?.[1] as string;
    expect(head).toBeDefined();
    const seq = Number(head.split(':')[0]);

    tamper(`DELETE FROM audit_log WHERE seq > ${seq - 3}`);
    const alone = verify();
    expect(alone.code).toBe(0); // the limit anchors exist for
    expect(alone.out).toMatch(
      /without --anchor, removed newest records or an emptied log cannot be detected/,
    );
    const truncated = verify(head);
    expect(truncated.code).toBe(2);
    expect(truncated.out).toMatch(
      new RegExp(
        `BROKEN at record ${seq - 2}: the log ends at record ${seq - 3}, but an anchor names record ${seq}`,
      ),
    );

    tamper('DELETE FROM audit_log');
    expect(verify().out).toMatch(/audit chain OK: 0 records/);
    const emptied = verify(head);
    expect(emptied.code).toBe(2);
    expect(emptied.out).toMatch(/BROKEN at record 1/);

    const bad = verify('12:nothex');
    expect(bad.code).toBe(64);
    expect(bad.out).toMatch(/--anchor '12:nothex' is not SEQ:HASH/);
  });
});
