/**
 * The local agent's bookkeeping without starting one: a pid file whose process is gone or is
 * not this home's agent is stale (and never signalled), a dead starter's lock is broken, a live
 * one is waited for. Starting and sharing the real agent: test/e2e/local-agent.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureLocalAgent, localAgentStatus, stopLocalAgent } from '../../connector/local-agent.js';
import { localHomeFiles } from '../../connector/local-home.js';

/** A pid that was just used and is gone. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid as number;

describe('the local agent: pid file and lock', () => {
  let home: string;
  const pidFile = () => join(home, 'agent.pid');
  const record = (pid: number) =>
    JSON.stringify({ pid, address: '127.0.0.1:1', startedAt: '2026-11-30T10:00:00.000Z' });

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'mcp-home-unit-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('is stopped without a pid file, stale when its process is gone', async () => {
    expect(await localAgentStatus(home)).toEqual({ state: 'stopped', logFile: join(home, 'agent.log') });
    const dead = deadPid();
    writeFileSync(pidFile(), record(dead));
    expect(await localAgentStatus(home)).toMatchObject({ state: 'stale', pid: dead });
    expect(await stopLocalAgent(home)).toBe(false);
    expect(existsSync(pidFile())).toBe(false);
  });

  it('never signals a live process that is not the agent of this home (a reused pid)', async () => {
    writeFileSync(pidFile(), record(process.pid));
    expect(await localAgentStatus(home)).toMatchObject({ state: 'stale', pid: process.pid });
    expect(await stopLocalAgent(home)).toBe(false); // this test process is still here to check
  });

  it('breaks the lock of a starter that died, and waits for one that lives', async () => {
    const missing = join(home, 'no-such-agent.js');
    writeFileSync(join(home, 'agent.lock'), `${deadPid()}\n`);
    // Reaching the start (which fails on the missing program) means the stale lock was broken.
    await expect(ensureLocalAgent(home, { agentMain: missing, timeoutMs: 5_000 })).rejects.toThrow(
      /no-such-agent\.js does not exist: build the package/,
    );
    expect(existsSync(join(home, 'agent.lock'))).toBe(false);

    writeFileSync(join(home, 'agent.lock'), `${process.pid}\n`);
    await expect(ensureLocalAgent(home, { agentMain: missing, timeoutMs: 300 })).rejects.toThrow(
      new RegExp(`another process \\(pid ${process.pid}\\) is starting the local agent`),
    );
    expect(existsSync(join(home, 'agent.lock'))).toBe(true);
  });

  it('uses the agent agent.pid names once its address takes connections, and leaves a silent one alone', async () => {
    // A process whose command line names this home's agent config, as the real agent's does.
    const agent = spawn(process.execPath, [
      '-e',
      'setTimeout(() => {}, 60_000)',
      localHomeFiles(home).agentConfig,
    ]);
    const server = createServer((socket) => socket.destroy());
    try {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      const startedAt = '2026-11-30T10:00:00.000Z';
      writeFileSync(pidFile(), JSON.stringify({ pid: agent.pid, address: `127.0.0.1:${port}`, startedAt }));
      expect(await ensureLocalAgent(home, { timeoutMs: 2_000 })).toMatchObject({
        pid: agent.pid,
        started: false,
      });

      await new Promise((resolve) => server.close(resolve));
      await expect(ensureLocalAgent(home, { timeoutMs: 300 })).rejects.toThrow(
        `the local agent (pid ${agent.pid}) runs but does not answer on 127.0.0.1:${port}`,
      );
      // Not started over it, and not stopped either.
      expect(existsSync(join(home, 'agent.lock'))).toBe(false);
      expect(agent.exitCode).toBeNull();
    } finally {
      agent.kill();
      server.close();
    }
  });
});
