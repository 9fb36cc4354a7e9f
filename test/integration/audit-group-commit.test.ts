/**
 * Group commit under a crash: a real agent process (the built `dist/agent/main.js`, so run
 * `npm run build` first) serves 64 pushes in flight over TLS gRPC and is killed with SIGKILL
 * while they run. A push's handler creates `<files.root>/<service>/` before anything else, and
 * every push names a service of its own, so each such directory proves that a handler started.
 * Each one (and each push answered OK) must have its attempt row, and the chain must verify
 * with `mcp-agent audit verify`.
 *
 * SIGKILL keeps what the kernel already holds, so this shows the ordering (row committed before
 * the handler) and the crash consistency of batches, not the fdatasync itself.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { McpAgentServiceClient, PushFileRequest } from '../../gen/mcp/v1/mcp.js';
import { AuditWriteError } from '../../registry/audit.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';

const repo = new URL('../..', import.meta.url).pathname;
const built = fs.existsSync(path.join(repo, 'dist/agent/main.js'));

const IN_FLIGHT = 64;
/** Pushes to see answered before the kill: enough for many batches to have been written. */
const ANSWERS_BEFORE_KILL = 150;
const content = Buffer.alloc(64 * 1024, 7);
const sha256 = createHash('sha256').update(content).digest('hex');

/** One push of `content` to `<service>/load.bin`; resolves when answered, rejects on any error. */
function push(
  client: McpAgentServiceClient,
  md: Parameters<McpAgentServiceClient['pushFile']>[0],
  service: string,
) {
  return new Promise<void>((resolve, reject) => {
    const call: ClientWritableStream<PushFileRequest> = client.pushFile(md, (err) =>
      err ? reject(err) : resolve(),
    );
    call.write({
      header: { service, path: 'load.bin', sha256, size: content.length, mode: 0, requestId: '' },
    });
    call.write({ chunk: content });
    call.end();
  });
}

describe.skipIf(!built && !process.env.CI)('audit group commit when the agent is killed under load', () => {
  let agent: TestAgent;

  beforeAll(async () => {
    agent = await startTestAgent({ process: true });
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it('has the attempt row of every push whose handler started, and the chain verifies', async () => {
    const client = agent.client();
    const md = await agent.auth({ roles: ['admin'], subject: 'load' });
    const answered: string[] = [];
    const otherFailures: string[] = [];
    let killed = false;
    let next = 0;
    const exited = new Promise((resolve) => agent.child?.once('exit', resolve));

    const worker = async () => {
      while (!killed && otherFailures.length === 0) {
        const service = `gc-${next++}`;
        try {
          await push(client, md, service);
          answered.push(service);
        } catch (err) {
          // Pushes cut by the kill end UNAVAILABLE or CANCELLED; nothing can be said of them.
          if (!killed)
            otherFailures.push(`${service}: ${(err as ServiceError).code} ${(err as Error).message}`);
        }
      }
    };
    const handlersStarted = () => fs.readdirSync(agent.filesRoot).filter((name) => name.startsWith('gc-'));
    // Kill when handlers are running that have not answered yet (their directory exists): the
    // moment a row written after its handler started would be missing.
    const killer = async () => {
      while (!killed && otherFailures.length === 0) {
        const running = handlersStarted().length - answered.length;
        if (
          answered.length >= ANSWERS_BEFORE_KILL &&
          (running > 0 || answered.length >= 2 * ANSWERS_BEFORE_KILL)
        ) {
          killed = true;
          agent.child?.kill('SIGKILL');
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await Promise.all([killer(), ...Array.from({ length: IN_FLIGHT }, worker)]);
    await exited;
    client.close();

    expect(otherFailures).toEqual([]);
    expect(answered.length).toBeGreaterThanOrEqual(ANSWERS_BEFORE_KILL);
    const started = handlersStarted();
    expect(started.length).toBeGreaterThanOrEqual(answered.length);

    const db = new Database(agent.database, { readonly: true });
    const attempts = new Set(
      db
        .prepare<[], { service: string }>(
          "SELECT service FROM audit_log WHERE entry = 'call' AND decision = 'allow' AND rpc = 'PushFile'",
        )
        .all()
        .map((r) => r.service),
    );
    db.close();
    expect(started.filter((service) => !attempts.has(service))).toEqual([]);
    expect(answered.filter((service) => !attempts.has(service))).toEqual([]);

    const verified = execFileSync(
      process.execPath,
      [path.join(repo, 'dist/agent/main.js'), 'audit', 'verify', '--config', agent.configFile],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(verified).toMatch(/audit chain OK: \d+ records/);
  });
});

describe('audit batches on a real WAL file', () => {
  let temp: TempRegistry;
  beforeEach(() => {
    temp = tempRegistry('mcp-audit-batch-');
  });
  afterEach(() => temp.cleanup());

  const call = { node: 'node1', rpc: 'NodeStatus', decision: 'allow' as const, subject: 'batch' };
  const ok = { outcome: 'ok' as const, durationMs: 1 };

  it('gives calls queued together consecutive seqs in call order, and a queued outcome is read back', async () => {
    const audit = temp.registry.audit;
    const refs = await Promise.all(Array.from({ length: 64 }, () => audit.recordCall(call)));
    expect(refs.map((r) => r.seq)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    // Not awaited, as the guard does: a read writes what is queued first.
    void audit.recordOutcome(refs[0]?.callId as string, ok);
    const [first] = audit.query({ pageSize: 64 }).records.filter((r) => r.seq === 1);
    expect(first?.outcome).toBe('ok');
    await expect(audit.recordOutcome(refs[0]?.callId as string, ok)).rejects.toThrow(/already recorded/);
    expect(audit.verifyChain()).toEqual({ ok: true, count: 65 });
  });

  it('refuses every call of a batch that cannot be written, and writes the next one on an intact chain', async () => {
    const { audit, db } = temp.registry;
    await audit.recordCall(call);
    db.exec(
      "CREATE TRIGGER audit_full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END",
    );
    const refused = await Promise.allSettled(Array.from({ length: 8 }, () => audit.recordCall(call)));
    expect(refused.map((r) => r.status)).toEqual(Array(8).fill('rejected'));
    for (const r of refused) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(AuditWriteError);
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAVAILABLE' });
    }
    db.exec('DROP TRIGGER audit_full');
    expect((await audit.recordCall(call)).seq).toBe(2);
    expect(audit.verifyChain()).toEqual({ ok: true, count: 2 });
  });
});
