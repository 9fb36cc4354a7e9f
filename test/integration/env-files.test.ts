/**
 * A secret given through env_files reaches the container and nothing else: no tool result, no
 * audit record, no registry row, no agent or connector log line, no definition file. One real
 * agent (its own process, so its output can be read) behind the built connector over stdio, a
 * session that calls every tool; the assistant's role has every permission of the contract but
 * not `file.pull_secrets`. Run `npm run build` first (`npm test` does).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type McpAgentServiceClient, ServiceSpec } from '../../gen/mcp/v1/mcp.js';
import { permissions } from '../../tools.generated.js';
import { deploy, signTestToken, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import {
  type ConnectorFiles,
  resultText,
  spawnStdioConnector,
  UNCONFIRMED_WRITES,
  writeConnectorConfig,
} from '../support/connector.js';
import { serviceSpec, sleeper } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

describe.skipIf(!bed)('env files: a secret the model never sees (real agent, real podman)', () => {
  const service = uniqueName('mcpt-secret');
  const container = `${service}-app`;
  const canary = `canary-${randomBytes(12).toString('hex')}`;
  // Prints its secret once, as a careless application would, then sleeps until SIGTERM.
  const printsItsSecret = [
    '/bin/sh',
    '-c',
    'echo "the secret is $CANARY"; trap "exit 0" TERM; sleep 3600 & wait',
  ];
  let agent: TestAgent;
  let files: ConnectorFiles;
  let session: Awaited<ReturnType<typeof spawnStdioConnector>>;
  let grpc: McpAgentServiceClient;
  let admin: Metadata;
  let agentOutput = '';
  const results: unknown[] = [];

  const call = async (name: string, args: Record<string, unknown>) => {
    const result = await session.client.callTool({ name, arguments: args });
    results.push(result);
    return result;
  };

  beforeAll(async () => {
    agent = await startTestAgent({
      process: true,
      rbac: { roles: [{ name: 'assistant', permissions: [...permissions] }] },
    });
    agent.child?.stdout?.on('data', (chunk: Buffer) => {
      agentOutput += chunk.toString();
    });
    agent.child?.stderr?.on('data', (chunk: Buffer) => {
      agentOutput += chunk.toString();
    });
    grpc = agent.client();
    admin = await agent.auth();
    // Placed by hand on the node, as an operator does: never through the assistant.
    const secrets = join(agent.filesRoot, service, 'secrets');
    await mkdir(secrets, { recursive: true });
    await writeFile(join(secrets, 'app.env'), `# the app's secrets\nCANARY=${canary}\n`, { mode: 0o600 });
    // The session's client cannot answer confirmation questions: its writes run unconfirmed.
    files = writeConnectorConfig(
      [{ name: agent.node, address: agent.address, caPem: agent.caPem }],
      UNCONFIRMED_WRITES,
    );
    session = await spawnStdioConnector(['--config', files.configFile], {
      MCP_TOKEN: await signTestToken({ subject: 'assistant', roles: ['assistant'] }),
    });
  });

  afterAll(async () => {
    await session?.close();
    grpc?.close();
    await agent?.stop();
    await removeContainers(service);
    files?.remove();
  });

  it('reaches the container, and no result, audit record, registry row, log line or definition file', async () => {
    const spec = {
      name: service,
      components: [
        { name: 'app', image: bed?.imageV1, cmd: printsItsSecret, init: true, envFiles: ['secrets/app.env'] },
      ],
    };
    const deployed = await call('deploy', { spec });
    expect(deployed.isError, resultText(deployed)).toBeFalsy();
    const printed = await execa('podman', ['exec', container, '/bin/sh', '-c', 'echo "$CANARY"']);
    expect(printed.stdout).toBe(canary);

    for (const [name, args] of [
      ['service_status', { service }],
      ['live_check', {}],
      ['list_services', {}],
      ['adopt_containers', { service }],
      ['sync_desired_state', { services: [spec] }],
      ['stop_service', { service }],
      ['start_service', { service }],
      ['restart_service', { service }],
      ['push_file', { service, path: 'config/app.conf', content: 'port = 8080\n' }],
      // Deployers may place a file in secrets/ (an operator does it from a terminal).
      ['push_file', { service, path: 'secrets/extra.env', content: 'LEVEL=debug\n', mode: 0o600 }],
    ] as const) {
      const result = await call(name, args);
      expect(result.isError, `${name}: ${resultText(result)}`).toBeFalsy();
    }

    // An inline value under a name that looks secret is recorded, with a warning naming the key.
    const inline = { ...spec, components: [{ ...spec.components[0], env: { DEBUG_TOKEN: 'not-really' } }] };
    const warned = await call('sync_desired_state', { services: [inline] });
    expect(resultText(warned)).toMatch(/^warning: services: .*\/app: env DEBUG_TOKEN looks secret/m);
    expect(resultText(warned)).not.toContain('not-really');

    // The container printed its secret: the logs show *** in its place, whoever asks.
    const deadline = Date.now() + 20_000;
    let logs = '';
    while (!logs.includes('the secret is') && Date.now() < deadline) {
      logs = resultText(await call('service_logs', { service }));
    }
    expect(logs).toContain('the secret is ***');
    // A cap that cuts the line inside the secret keeps a piece of it: masked too.
    const cut = resultText(await call('service_logs', { service, maxBytes: 20 }));
    expect(cut).toMatch(/\[truncated: \d+ bytes of older lines left out/);
    const lines = cut.split('\n');
    expect(lines[lines.findIndex((line) => line.startsWith('[truncated:')) + 1]).toBe('***');
    expect(cut).not.toContain(canary.slice(-6));

    const pulled = await call('pull_file', { service, path: 'secrets/app.env' });
    expect(pulled.isError).toBe(true);
    expect(resultText(pulled)).toMatch(/secrets\/.*file\.pull_secrets/);
    const linked = join(agent.filesRoot, service, 'config', 'link.env');
    await symlink('../secrets/app.env', linked);
    const throughLink = await call('pull_file', { service, path: 'config/link.env' });
    expect(throughLink.isError).toBe(true);
    expect(resultText(throughLink)).toContain('file.pull_secrets');

    const audit = await call('query_audit', { service });
    expect(audit.isError, resultText(audit)).toBeFalsy();
    const definition = readFileSync(join(files.servicesDir, `${service}.toml`), 'utf8');
    expect(definition).toContain('env_files = ["secrets/app.env"]');

    const removed = await call('remove_service', { service, purgeFiles: true });
    expect(removed.isError, resultText(removed)).toBeFalsy();

    expect(JSON.stringify(results)).not.toContain(canary);
    expect(definition).not.toContain(canary);
    expect(agentOutput).toContain('"rpc":"Deploy"'); // the log was captured, and holds calls
    expect(agentOutput).not.toContain(canary);
    expect(session.stderr()).not.toContain(canary);
    // The registry's own files, the write-ahead log included: audit records, specs, events.
    const database = [agent.database, `${agent.database}-wal`].filter((file) => existsSync(file));
    expect(database).toContain(agent.database);
    for (const file of database) expect(readFileSync(file).includes(canary), file).toBe(false);
  });

  it('refuses bad env files with a clear error, and changes nothing', async () => {
    const bad = `${service}-bad`;
    const dir = join(agent.filesRoot, bad);
    await mkdir(join(dir, 'secrets'), { recursive: true });
    await writeFile(join(dir, 'secrets', 'open.env'), 'A=1\n', { mode: 0o644 });
    await chmod(join(dir, 'secrets', 'open.env'), 0o644);
    await writeFile(join(dir, 'secrets', 'bare.env'), 'HOME\n', { mode: 0o600 });
    await writeFile(join(dir, 'inside.env'), 'A=1\n', { mode: 0o600 });
    await symlink('/etc/hostname', join(dir, 'secrets', 'out.env'));
    await symlink('../inside.env', join(dir, 'secrets', 'in.env'));
    const cases: [string, number, RegExp][] = [
      ['/etc/passwd', 3, /env_files\[0\]: path '\/etc\/passwd' is absolute/],
      ['secrets/../../x.env', 3, /env_files\[0\]: path .* leaves the service directory/],
      ['app.env', 3, /not in secrets\//],
      ['secrets/missing.env', 9, /secrets\/missing\.env does not exist: put it there/],
      ['secrets/open.env', 9, /has mode 0644.*chmod 600 .*secrets\/open\.env/],
      ['secrets/bare.env', 3, /line 1: has no "="/],
      ['secrets/out.env', 3, /leaves the service directory/],
      ['secrets/in.env', 3, /leads outside .*secrets\/ through a symbolic link/],
    ];
    for (const [file, code, message] of cases) {
      const spec = serviceSpec(bad, [sleeper('app', bed?.imageV1 ?? '', { envFiles: [file] })]);
      const err = await deploy(grpc, { spec: ServiceSpec.fromPartial(spec) }, admin).then(
        () => undefined,
        (e: { code: number; details: string }) => e,
      );
      expect(err?.code, file).toBe(code);
      expect(err?.details, file).toMatch(message);
    }
    const status = await unary(grpc.getServiceStatus.bind(grpc), { service: bad, eventLimit: 0 }, admin).then(
      () => 'recorded',
      (e: { code: number }) => e.code,
    );
    expect(status).toBe(5); // NOT_FOUND: nothing was recorded
    const exists = await execa('podman', ['container', 'exists', `${bad}-app`], { reject: false });
    expect(exists.exitCode).toBe(1);
    expect(existsSync(join(dir, 'secrets', 'open.env'))).toBe(true);
  });
});
