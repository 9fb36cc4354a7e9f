/**
 * The agent process as systemd runs it: `mcp-agent server` in its own process, stopped with
 * SIGTERM while a deploy is in flight. The deploy finishes, its audit outcome is written,
 * and the process exits 0 having closed the database.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { DeployResponse } from '../../gen/mcp/v1/mcp.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { component, serviceSpec } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();
const root = new URL('../..', import.meta.url).pathname;

describe.skipIf(!bed)('mcp-agent server shutdown', () => {
  const service = uniqueName('shutdown');
  let agent: TestAgent | undefined;
  afterAll(async () => {
    await agent?.stop();
    await removeContainers(service);
  });

  it('finishes an in-flight deploy on SIGTERM, records its outcome, and exits 0', async () => {
    // A grace long enough for the deploy to finish on a busy machine: the test is about
    // finishing in-flight work, not about how long it takes.
    agent = await startTestAgent({ process: true, shutdownGraceSeconds: 120 });
    const child = agent.child!;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const client = agent.client();
    const call = client.deploy(
      {
        spec: serviceSpec(
          service,
          [
            component('a', { image: bed!.imageV1, cmd: ['/bin/sleep', '600'] }),
            component('b', { image: bed!.imageV2, cmd: ['/bin/sleep', '600'] }),
          ],
          true,
        ),
        service: '',
        component: '',
        requestId: '',
      },
      await agent.auth({ roles: ['operator'] }),
    );
    const messages: DeployResponse[] = [];
    let signalled = false;
    for await (const msg of call as AsyncIterable<DeployResponse>) {
      messages.push(msg);
      if (!signalled && msg.progress) {
        child.kill('SIGTERM'); // mid-deploy
        signalled = true;
      }
    }
    expect(signalled).toBe(true);
    const result = messages.at(-1)?.result;
    expect(result?.components.map((c) => [c.component, c.ok])).toEqual([
      ['a', true],
      ['b', true],
    ]);
    expect(await exited).toBe(0);

    // The database was closed cleanly: no -wal left behind with unapplied writes, and the
    // deploy's outcome is in the audit log.
    const db = new Database(agent.database, { readonly: true });
    const outcome = db
      .prepare(
        "SELECT o.outcome FROM audit_log c JOIN audit_log o ON o.call_id = c.call_id AND o.entry = 'outcome' WHERE c.entry = 'call' AND c.rpc = 'Deploy'",
      )
      .get() as { outcome: string } | undefined;
    db.close();
    expect(outcome?.outcome).toBe('ok');
    const verify = execFileSync(
      process.execPath,
      [join(root, 'dist/agent/main.js'), 'audit', 'verify', '--config', agent.configFile],
      { encoding: 'utf8' },
    );
    expect(verify).toMatch(/audit chain OK/);
  });
});
