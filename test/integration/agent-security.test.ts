/**
 * The agent's guard, end to end through real TLS gRPC: tokens from a real OIDC provider
 * (oidc-provider on loopback) and from the MCIAS stand-in, RBAC, the audit chain, fail-closed
 * audit writes on a real full filesystem, and TLS refusals.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { base64url, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority } from '../../connector/certs.js';
import { UnauthenticatedError } from '../../core/errors.js';
import {
  AuditDecision,
  AuditOutcome,
  McpAgentServiceClient,
  NodeStatusResponse,
  type QueryAuditResponse,
} from '../../gen/mcp/v1/mcp.js';
import { type AuditRow, auditRowHash, GENESIS_HASH, OUTCOME_DELAY_MS } from '../../registry/audit.js';
import { bearer, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { eventually } from '../support/eventually.js';
import { type MciasStandIn, startMciasStandIn } from '../support/mcias.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';

const RESOURCE = 'https://fleet.test.invalid';
const root = new URL('../..', import.meta.url).pathname;

/** A nodeStatus handler that only counts: it shows whether the guard let a call through. */
function countingNodeStatus() {
  const counter = { calls: 0 };
  const handler = async (): Promise<NodeStatusResponse> => {
    counter.calls += 1;
    return NodeStatusResponse.fromPartial({ node: 'node1', runtime: 'podman' });
  };
  return { counter, handler };
}

function callNodeStatus(agent: TestAgent, md: Metadata, client = agent.client()) {
  return unary(client.nodeStatus.bind(client), {}, md);
}

function rawAuth(value: string): Metadata {
  const md = new Metadata();
  md.set('authorization', value);
  return md;
}

async function auditPages(agent: TestAgent, filter: Record<string, unknown>) {
  const client = agent.client();
  const md = await agent.auth({ roles: ['auditor'], subject: 'audit-reader' });
  const records: QueryAuditResponse['records'] = [];
  let pageToken = '';
  do {
    const page: QueryAuditResponse = await unary(
      client.queryAudit.bind(client),
      {
        since: undefined,
        until: undefined,
        subject: '',
        rpc: '',
        service: '',
        decision: 0,
        outcome: 0,
        pageSize: 500,
        pageToken,
        ...filter,
      },
      md,
    );
    records.push(...page.records);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return records;
}

describe('authentication with a real OIDC provider', () => {
  let oidc: TestOidcProvider;
  let agent: TestAgent;
  const reached = countingNodeStatus();

  beforeAll(async () => {
    oidc = await startOidcProvider({
      resource: RESOURCE,
      clients: [
        { clientId: 'ops-bot', clientSecret: 'ops-secret-0123456789', roles: ['operator'] },
        { clientId: 'other', clientSecret: 'other-secret-0123456789', roles: ['viewer'] },
      ],
    });
    agent = await startTestAgent({
      issuers: [{ type: 'jwt', issuer: oidc.issuer, jwks_uri: oidc.jwksUri, audience: RESOURCE }],
      handlers: { nodeStatus: reached.handler },
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await oidc?.close();
  });

  it('lets a valid client-credentials token reach the handler and records who called', async () => {
    const token = await oidc.token('ops-bot');
    const before = reached.counter.calls;
    const res = await callNodeStatus(agent, bearer(token));
    expect(res.runtime).toBe('podman');
    expect(reached.counter.calls).toBe(before + 1);
    const records = await auditPages(agent, { rpc: 'NodeStatus', subject: 'ops-bot' });
    expect(records[0]).toMatchObject({
      issuer: oidc.issuer,
      subject: 'ops-bot',
      roles: ['operator'],
      decision: AuditDecision.AUDIT_DECISION_ALLOW,
      outcome: AuditOutcome.AUDIT_OUTCOME_OK,
      tool: 'node_status',
    });
  });

  it('refuses every kind of bad token with one fixed message and audits each refusal', async () => {
    const key = await importJWK(oidc.signingKey, 'RS256');
    const otherKey = (await generateKeyPair('RS256')).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, opts: { kid?: string; signer?: typeof key } = {}) =>
      new SignJWT({ roles: ['admin'], ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? (oidc.signingKey.kid as string) })
        .sign(opts.signer ?? key);
    const good = { iss: oidc.issuer, aud: RESOURCE, sub: 'mallory', iat: now, exp: now + 300 };
    const publicPem = createPublicKey({ key: oidc.publicJwk as JWK & { kty: string }, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const unsigned = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify(good))}.`;
    const hs256 = await new SignJWT(good)
      .setProtectedHeader({ alg: 'HS256', kid: oidc.signingKey.kid as string })
      .sign(new TextEncoder().encode(publicPem));
    const { exp: _exp, ...withoutExp } = good;

    const cases: Array<[string, Metadata]> = [
      ['no token', new Metadata()],
      ['not a bearer token', rawAuth('Basic dXNlcjpwYXNz')],
      ['malformed token', rawAuth('Bearer not.a-jwt.at-all')],
      ['expired', bearer(await sign({ ...good, iat: now - 7200, exp: now - 3600 }))],
      ['not yet valid', bearer(await sign({ ...good, nbf: now + 3600 }))],
      ['wrong audience', bearer(await sign({ ...good, aud: 'https://elsewhere.invalid' }))],
      ['wrong issuer', bearer(await sign({ ...good, iss: 'https://evil.invalid' }))],
      ['unknown key id', bearer(await sign(good, { kid: 'no-such-key' }))],
      ['alg none', bearer(unsigned)],
      ['HS256 signed with the public key', bearer(hs256)],
      ['signed by a key not in the set', bearer(await sign(good, { signer: otherKey }))],
      ['no exp', bearer(await sign(withoutExp))],
    ];
    const before = reached.counter.calls;
    const deniedBefore = (await auditPages(agent, { decision: AuditDecision.AUDIT_DECISION_DENY })).length;
    for (const [name, md] of cases) {
      const err = await callNodeStatus(agent, md).then(
        () => undefined,
        (e: { code: number; details: string }) => e,
      );
      expect(err, name).toBeDefined();
      expect(err?.code, name).toBe(status.UNAUTHENTICATED);
      expect(err?.details, name).toBe(UnauthenticatedError.MESSAGE);
    }
    expect(reached.counter.calls).toBe(before);
    const denied = await auditPages(agent, { decision: AuditDecision.AUDIT_DECISION_DENY });
    expect(denied.length - deniedBefore).toBe(cases.length);
    for (const r of denied.slice(0, cases.length)) {
      expect(r.errorCode).toBe('UNAUTHENTICATED');
      expect(r.rpc).toBe('NodeStatus');
      expect(r.subject).toBe('');
    }
  });
  it('refuses a token issued ten years ahead, with the fixed message, and audits why', async () => {
    const key = await importJWK(oidc.signingKey, 'RS256');
    const iat = Math.floor(Date.now() / 1000) + 10 * 365 * 24 * 3600;
    const token = await new SignJWT({
      iss: oidc.issuer,
      aud: RESOURCE,
      sub: 'time-traveller',
      iat,
      exp: iat + 300,
    })
      .setProtectedHeader({ alg: 'RS256', kid: oidc.signingKey.kid as string })
      .sign(key);
    const before = reached.counter.calls;
    const err = await callNodeStatus(agent, bearer(token)).then(
      () => undefined,
      (e: { code: number; details: string }) => e,
    );
    expect(err?.code).toBe(status.UNAUTHENTICATED);
    expect(err?.details).toBe(UnauthenticatedError.MESSAGE);
    expect(reached.counter.calls).toBe(before);
    const [refusal] = await auditPages(agent, { decision: AuditDecision.AUDIT_DECISION_DENY });
    expect(refusal).toMatchObject({ rpc: 'NodeStatus', errorCode: 'UNAUTHENTICATED', subject: '' });
    // The reason is kept for the operator in the audit row, never sent to the caller.
    const db = new Database(agent.database, { readonly: true });
    const row = db
      .prepare(
        "SELECT error_message FROM audit_log WHERE error_code = 'UNAUTHENTICATED' ORDER BY seq DESC LIMIT 1",
      )
      .get() as { error_message: string } | undefined;
    db.close();
    expect(row?.error_message).toMatch(/token issued in the future/);
  });
});

describe('authentication with an MCIAS issuer', () => {
  let mcias: MciasStandIn;
  let agent: TestAgent;
  const reached = countingNodeStatus();

  beforeAll(async () => {
    mcias = await startMciasStandIn();
    agent = await startTestAgent({
      issuers: [{ type: 'mcias', name: 'main', server_url: mcias.serverUrl }],
      rbac: { bindings: [{ issuer: 'main', subject: 'kyle', roles: ['viewer'] }] },
      handlers: { nodeStatus: reached.handler },
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await mcias?.close();
  });

  it('accepts a valid MCIAS token, caches the answer and applies bindings', async () => {
    const token = mcias.issue('kyle', []);
    const before = mcias.requests;
    await callNodeStatus(agent, bearer(token));
    await callNodeStatus(agent, bearer(token));
    expect(mcias.requests - before).toBe(1);
    expect(reached.counter.calls).toBe(2);
  });

  it('refuses a token MCIAS calls invalid', async () => {
    const token = mcias.issue('kyle', []);
    mcias.revoke(token);
    await expect(callNodeStatus(agent, bearer(token))).rejects.toMatchObject({
      code: status.UNAUTHENTICATED,
    });
  });
});

describe('authorization', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent({
      rbac: {
        roles: [{ name: 'web-ops', permissions: ['service.stop', 'service.status'], services: ['web-*'] }],
      },
    });
  });
  afterAll(() => agent?.stop());

  it('allows a service-scoped role on web-* and denies it on db, naming the permission', async () => {
    const client = agent.client();
    const md = await agent.auth({ roles: ['web-ops'], subject: 'scoped' });
    const stop = (service: string) =>
      unary(client.stopService.bind(client), { service, component: '', requestId: '' }, md).then(
        () => undefined,
        (e: { code: number; details: string }) => e,
      );
    // Allowed through the guard: the handler answers that the service is unknown.
    const allowed = await stop('web-api');
    expect(allowed?.code).toBe(status.NOT_FOUND);
    const denied = await stop('db');
    expect(denied?.code).toBe(status.PERMISSION_DENIED);
    expect(denied?.details).toMatch(/service\.stop/);
    expect(denied?.details).toMatch(/'db'/);
    const records = await auditPages(agent, { subject: 'scoped', rpc: 'StopService' });
    expect(records.map((r) => [r.service, r.decision])).toEqual([
      ['db', AuditDecision.AUDIT_DECISION_DENY],
      ['web-api', AuditDecision.AUDIT_DECISION_ALLOW],
    ]);
  });

  it('denies a caller with no roles', async () => {
    const client = agent.client();
    const md = await agent.auth({ roles: [], subject: 'nobody' });
    await expect(unary(client.listServices.bind(client), { desiredState: 0 }, md)).rejects.toMatchObject({
      code: status.PERMISSION_DENIED,
    });
  });
});

describe('requests that do not decode or convert', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent();
  });
  afterAll(() => agent?.stop());

  /** A QueryAudit whose `since` Timestamp has `seconds` as given, written field by field. */
  async function queryAuditSince(seconds: bigint): Promise<{ code: number; details: string }> {
    const timestamp = new BinaryWriter().uint32(8).int64(seconds).finish();
    const request = new BinaryWriter().uint32(10).bytes(timestamp).finish();
    const client = agent.client();
    const md = await agent.auth({ roles: ['admin'], subject: 'range' });
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        '/mcp.v1.McpAgentService/QueryAudit',
        (bytes: Uint8Array) => Buffer.from(bytes),
        (bytes: Buffer) => bytes,
        request,
        md,
        (err) => resolve(err as unknown as { code: number; details: string }),
      );
    });
  }

  it('answers INVALID_ARGUMENT, not INTERNAL, to an int64 past 2^53 and to a timestamp past the year 275760', async () => {
    const huge = await queryAuditSince(2n ** 60n);
    expect(huge.code).toBe(status.INVALID_ARGUMENT);
    expect(huge.details).toMatch(/could not be decoded/);
    const farFuture = await queryAuditSince(9_000_000_000_000n);
    expect(farFuture.code).toBe(status.INVALID_ARGUMENT);
    expect(farFuture.details).toMatch(/out of range/);
    // Both refusals are audited, after authentication, as refused calls.
    const records = await auditPages(agent, { subject: 'range', rpc: 'QueryAudit' });
    expect(records.filter((r) => r.decision === AuditDecision.AUDIT_DECISION_DENY)).toHaveLength(2);
    expect(records.every((r) => r.errorCode === 'INVALID_ARGUMENT')).toBe(true);
  });
});

describe('the audit log', () => {
  let agent: TestAgent;

  /** `count` concurrent ListServices calls as `load`: two audit rows each. */
  async function loadCalls(target: TestAgent, count: number): Promise<void> {
    const client = target.client();
    const md = await target.auth({ roles: ['viewer'], subject: 'load' });
    await Promise.all(
      Array.from({ length: count }, () => unary(client.listServices.bind(client), { desiredState: 0 }, md)),
    );
  }

  // The 1,000 calls are made once, here, and only read afterwards: the cases that read them pass
  // in any order. The tampering case works on an agent of its own.
  beforeAll(async () => {
    agent = await startTestAgent();
    await loadCalls(agent, 1000);
  }, 120_000);
  afterAll(() => agent?.stop());

  const verify = (target: TestAgent = agent) => {
    try {
      return {
        code: 0,
        out: execFileSync(
          process.execPath,
          [join(root, 'dist/agent/main.js'), 'audit', 'verify', '--config', target.configFile],
          { encoding: 'utf8' },
        ),
      };
    } catch (err) {
      const e = err as { status: number; stdout: string };
      return { code: e.status, out: e.stdout };
    }
  };

  it('keeps a complete record of 1,000 concurrent calls in a chain that verifies', async () => {
    const records = await auditPages(agent, { subject: 'load', rpc: 'ListServices' });
    expect(records).toHaveLength(1000);
    expect(records.every((r) => r.outcome === AuditOutcome.AUDIT_OUTCOME_OK && r.durationMs > 0)).toBe(true);
    const result = verify();
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/audit chain OK/);
  });

  it('exports the log as JSON lines whose hashes chain, from a given time', () => {
    const cli = (...args: string[]) =>
      execFileSync(
        process.execPath,
        [join(root, 'dist/agent/main.js'), 'audit', 'export', '--config', agent.configFile, ...args],
        {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
    const rows = cli()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditRow);
    expect(rows.length).toBeGreaterThanOrEqual(2000);
    let prev = GENESIS_HASH;
    for (const row of rows) {
      expect(row.prev_hash).toBe(prev);
      expect(auditRowHash(row.prev_hash, row)).toBe(row.hash);
      prev = row.hash;
    }
    const middle = rows[Math.floor(rows.length / 2)] as AuditRow;
    const later = cli('--since', middle.time).split('\n').filter(Boolean);
    expect(later.length).toBeLessThan(rows.length);
    expect(later.length).toBeGreaterThan(0);
    expect(() => cli('--since', 'yesterday')).toThrow();
  });

  it('names the first record edited or deleted behind its back', async () => {
    const victim = await startTestAgent({ node: 'tampered' });
    try {
      await loadCalls(victim, 50); // 100 records, so seq 42 and 77 exist
      await recordsWritten(victim, 100);
      tamperAndVerify(victim);
    } finally {
      await victim.stop();
    }
  });

  /** Outcome rows wait for the next call's batch, or OUTCOME_DELAY_MS: poll until all are in. */
  async function recordsWritten(target: TestAgent, count: number): Promise<void> {
    await eventually(
      `${count} audit records`,
      () => {
        const db = new Database(target.database, { readonly: true });
        const { n } = db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number };
        db.close();
        return n >= count ? n : undefined;
      },
      { seconds: 10, intervalMs: OUTCOME_DELAY_MS },
    );
  }

  function tamperAndVerify(victim: TestAgent): void {
    // Tampering as an attacker with the file would: another connection, triggers dropped.
    const db = new Database(victim.database);
    for (const t of db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")
      .all() as Array<{ name: string }>) {
      db.exec(`DROP TRIGGER "${t.name}"`);
    }
    const original = db.prepare('SELECT subject FROM audit_log WHERE seq = 42').get() as {
      subject: string | null;
    };
    db.prepare("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 42").run();
    db.close();
    let result = verify(victim);
    expect(result.code).toBe(2);
    expect(result.out).toMatch(/BROKEN at record 42/);

    const db2 = new Database(victim.database);
    db2.prepare('UPDATE audit_log SET subject = ? WHERE seq = 42').run(original.subject); // undo the edit
    db2.prepare('DELETE FROM audit_log WHERE seq = 77').run();
    db2.close();
    result = verify(victim);
    expect(result.code).toBe(2);
    expect(result.out).toMatch(/BROKEN at record 77/);
  }
});

const canMount = (() => {
  if (process.getuid?.() !== 0) return false;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
    execFileSync('umount', [dir]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();
if (!canMount && process.env.CI)
  throw new Error('CI runs as root and must be able to mount a tmpfs for the full-disk test');

describe.skipIf(!canMount)(
  'fail closed when the audit log cannot be written (needs root for a tmpfs)',
  () => {
    let agent: TestAgent;
    let mountPoint: string;
    const reached = countingNodeStatus();

    beforeAll(async () => {
      mountPoint = mkdtempSync(join(tmpdir(), 'mcp-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
      const dataDir = join(mountPoint, 'agent');
      mkdirSync(dataDir);
      agent = await startTestAgent({ dataDir, handlers: { nodeStatus: reached.handler } });
    });
    afterAll(async () => {
      await agent?.stop();
      execFileSync('umount', ['-l', mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    });

    it('refuses calls on a full disk and serves again once there is room', async () => {
      const md = await agent.auth({ roles: ['viewer'] });
      await callNodeStatus(agent, md);
      const filler = join(mountPoint, 'filler');
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
      } catch {
        // dd stops with ENOSPC, which is the point
      }
      const before = reached.counter.calls;
      const err = await callNodeStatus(agent, md).then(
        () => undefined,
        (e: { code: number; details: string }) => e,
      );
      expect(err?.code).toBe(status.UNAVAILABLE);
      expect(err?.details).toMatch(/audit log cannot be written/);
      expect(reached.counter.calls).toBe(before);
      rmSync(filler);
      await callNodeStatus(agent, md);
      expect(reached.counter.calls).toBe(before + 1);
    });

    it('refuses calls when the database has become read-only', async () => {
      const md = await agent.auth({ roles: ['viewer'] });
      // The agent's own connection switched to read-only, as SQLite reports a read-only database.
      agent.registry?.db.pragma('query_only = ON');
      const before = reached.counter.calls;
      await expect(callNodeStatus(agent, md)).rejects.toMatchObject({ code: status.UNAVAILABLE });
      expect(reached.counter.calls).toBe(before);
      agent.registry?.db.pragma('query_only = OFF');
    });
  },
);

describe('TLS', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent();
  });
  afterAll(() => agent?.stop());

  it('refuses a plaintext client', async () => {
    const client = new McpAgentServiceClient(agent.address, credentials.createInsecure());
    await expect(callNodeStatus(agent, await agent.auth(), client)).rejects.toMatchObject({
      code: status.UNAVAILABLE,
    });
    client.close();
  });

  it('refuses a client that trusts another CA', async () => {
    const other = await createCertificateAuthority('another CA');
    const client = new McpAgentServiceClient(
      agent.address,
      credentials.createSsl(Buffer.from(other.certPem)),
    );
    await expect(callNodeStatus(agent, await agent.auth(), client)).rejects.toMatchObject({
      code: status.UNAVAILABLE,
    });
    client.close();
  });

  it('speaks TLS 1.3 only', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: agent.port,
        ca: agent.caPem,
        maxVersion: 'TLSv1.2',
        ALPNProtocols: ['h2'],
      });
      socket.once('secureConnect', () => {
        resolve(`connected with ${socket.getProtocol()}`);
        socket.destroy();
      });
      socket.once('error', (e) => resolve(`refused: ${e.message}`));
    });
    expect(outcome).toMatch(/^refused/);
  });
});

describe('mutual TLS', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent({ clientCertificates: true });
  });
  afterAll(() => agent?.stop());

  it('serves a client with a certificate from the CA and refuses one without', async () => {
    const md = await agent.auth({ roles: ['viewer'] });
    await expect(callNodeStatus(agent, md)).resolves.toBeDefined();
    const bare = new McpAgentServiceClient(agent.address, credentials.createSsl(Buffer.from(agent.caPem)));
    await expect(callNodeStatus(agent, md, bare)).rejects.toMatchObject({ code: status.UNAVAILABLE });
    bare.close();
  });
});
