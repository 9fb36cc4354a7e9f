/**
 * Admission through the real agent and real podman: a caller whose role is scoped to this
 * run's services (as `web-*` would be) cannot turn a deploy, a sync or an adoption into root
 * on the node. Refusals are FAILED_PRECONDITION, leave nothing recorded or running, and are
 * audited with the error outcome; an allowed bind and an exception deploy.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Metadata, status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditDecision,
  AuditOutcome,
  type DeployRequest,
  type McpAgentServiceClient,
  type ServiceSpec,
} from '../../gen/mcp/v1/mcp.js';
import { deploy, grpcError, startTestAgent, type TestAgent, unary } from '../support/agent.js';
import { SLEEPER, serviceSpec, sleeper } from '../support/specs.js';
import { removeContainers, requireTestbed, uniqueName } from '../support/testbed.js';

const bed = await requireTestbed();

async function containerExists(name: string): Promise<boolean> {
  const { exitCode } = await execa('podman', ['container', 'exists', name], { reject: false });
  return exitCode === 0;
}

describe.skipIf(!bed)('admission (real agent, real podman)', () => {
  const base = uniqueName('mcpt-adm');
  const backup = `${base}-bak`;
  let agent: TestAgent;
  let client: McpAgentServiceClient;
  let md: Metadata;
  let auditor: Metadata;
  let sharedDir: string;

  const refusedDeploy = (req: Partial<DeployRequest>) => grpcError(deploy(client, req, md));

  /** The audit records of `rpc` calls for `service` ('' for any). */
  async function auditOf(rpc: string, service: string) {
    const { records } = await unary(
      client.queryAudit.bind(client),
      {
        subject: '',
        rpc,
        service,
        decision: 0,
        outcome: 0,
        pageSize: 50,
        pageToken: '',
        since: undefined,
        until: undefined,
      },
      auditor,
    );
    return records;
  }

  /** Deploys `spec` and expects an admission refusal naming `expected`; nothing runs or is recorded. */
  async function expectRefused(spec: ServiceSpec, expected: RegExp): Promise<void> {
    const err = await refusedDeploy({ spec });
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(expected);
    expect(agent.registry!.services.get(spec.name)).toBeUndefined();
    for (const c of spec.components) expect(await containerExists(`${spec.name}-${c.name}`)).toBe(false);
    const records = await auditOf('Deploy', spec.name);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      subject: 'web-deployer',
      decision: AuditDecision.AUDIT_DECISION_ALLOW,
      outcome: AuditOutcome.AUDIT_OUTCOME_ERROR,
      errorCode: 'FAILED_PRECONDITION',
    });
  }

  beforeAll(async () => {
    sharedDir = await mkdtemp(join(tmpdir(), 'mcpt-adm-shared-'));
    await writeFile(join(sharedDir, 'dump.sql'), 'backup\n');
    await chmod(sharedDir, 0o755);
    agent = await startTestAgent({
      rbac: {
        // A role scoped to this run's services, as `web-*` would be on a real fleet.
        roles: [
          {
            name: 'web-deployer',
            permissions: ['service.deploy', 'service.sync', 'service.adopt'],
            services: [`${base}-*`],
          },
        ],
      },
      settings: {
        admission: {
          exceptions: [{ services: [backup], allow_bind: [`${sharedDir}:ro`] }],
        },
      },
    });
    client = agent.client();
    md = await agent.auth({ subject: 'web-deployer', roles: ['web-deployer'] });
    auditor = await agent.auth({ subject: 'auditor', roles: ['auditor'] });
  });

  afterAll(async () => {
    await agent?.stop();
    await removeContainers(base);
    if (sharedDir) await rm(sharedDir, { recursive: true, force: true });
  });

  it('refuses / mounted as /host with user 0, and audits the refusal', async () => {
    const svc = `${base}-root`;
    await expectRefused(
      serviceSpec(svc, [sleeper('app', bed!.imageV1, { volumes: ['/:/host'], user: '0' })]),
      /volume "\/:\/host" mounts \/, the host's whole file system[\s\S]*user "0" is root/,
    );
  });

  it('refuses /etc mounted read-write, naming the exception that would allow it', async () => {
    const svc = `${base}-etc`;
    await expectRefused(
      serviceSpec(svc, [sleeper('app', bed!.imageV1, { volumes: ['/etc:/hostetc:rw'] })]),
      new RegExp(
        `mounts /etc, which the restricted admission policy refuses \\(host system directory\\); to allow it for this service add \\[\\[admission.exceptions\\]\\] services = \\["${svc}"\\] allow_bind = \\["/etc"\\]`,
      ),
    );
  });

  it('refuses the host network', async () => {
    const svc = `${base}-net`;
    await expectRefused(
      serviceSpec(svc, [sleeper('app', bed!.imageV1, { network: 'host' })]),
      /network "host" shares the node's network stack/,
    );
  });

  it("deploys a bind of the service's own files directory", async () => {
    const svc = `${base}-own`;
    const dataDir = join(agent.filesRoot, svc, 'data');
    await mkdir(dataDir, { recursive: true });
    const { result } = await deploy(
      client,
      { spec: serviceSpec(svc, [sleeper('app', bed!.imageV1, { volumes: [`${dataDir}:/data:ro`] })]) },
      md,
    );
    expect(result.components.map((c) => [c.component, c.ok, c.error])).toEqual([['app', true, '']]);
    expect(await containerExists(`${svc}-app`)).toBe(true);
  });

  it('deploys what an exception allows, for its service only, read-only as it says', async () => {
    const { result } = await deploy(
      client,
      {
        spec: serviceSpec(backup, [sleeper('app', bed!.imageV1, { volumes: [`${sharedDir}:/backups:ro`] })]),
      },
      md,
    );
    expect(result.components.map((c) => [c.component, c.ok])).toEqual([['app', true]]);
    const { stdout } = await execa('podman', ['exec', `${backup}-app`, 'cat', '/backups/dump.sql']);
    expect(stdout).toBe('backup');

    const writable = await refusedDeploy({
      spec: serviceSpec(backup, [sleeper('app', bed!.imageV1, { volumes: [`${sharedDir}:/backups`] })]),
    });
    expect(writable.code).toBe(status.FAILED_PRECONDITION);
    expect(writable.details).toMatch(/is allowed read-only .* add :ro to the volume/);

    const other = await refusedDeploy({
      spec: serviceSpec(`${base}-other`, [sleeper('app', bed!.imageV1, { volumes: [`${sharedDir}:/b:ro`] })]),
    });
    expect(other.details).toMatch(/outside the service's own directory/);
  });

  it('refuses a deploy by name of a spec recorded under a looser policy', async () => {
    const svc = `${base}-legacy`;
    // Recorded straight into the registry, as a spec synced before admission existed would be.
    agent.registry!.services.upsert(
      serviceSpec(svc, [sleeper('app', bed!.imageV1, { volumes: ['/etc:/x'] })]),
    );
    const err = await refusedDeploy({ service: svc });
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/component "app": volume "\/etc:\/x" mounts \/etc/);
    expect(await containerExists(`${svc}-app`)).toBe(false);
  });

  it('refuses a sync that records a violating spec, recording none of the sync', async () => {
    const fine = `${base}-sync-ok`;
    const bad = `${base}-sync-bad`;
    const err = await grpcError(
      unary(
        client.syncDesiredState.bind(client),
        {
          services: [
            serviceSpec(fine, [sleeper('app', bed!.imageV1)]),
            serviceSpec(bad, [sleeper('app', bed!.imageV1, { volumes: ['/run/podman:/run/podman'] })]),
          ],
          requestId: '',
        },
        md,
      ),
    );
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(
      /mounts \/run\/podman, which the restricted admission policy refuses \(the container runtime's sockets and state\)/,
    );
    expect(agent.registry!.services.get(fine)).toBeUndefined();
    expect(agent.registry!.services.get(bad)).toBeUndefined();
    expect((await auditOf('SyncDesiredState', ''))[0]).toMatchObject({
      outcome: AuditOutcome.AUDIT_OUTCOME_ERROR,
      errorCode: 'FAILED_PRECONDITION',
    });
  });

  it('refuses to adopt a container that mounts /etc: nothing recorded, the container left alone', async () => {
    const svc = `${base}-adopt`;
    await execa('podman', [
      'run',
      '--detach',
      `--name=${svc}`,
      '--volume=/etc:/x:ro',
      bed!.imageV1,
      ...SLEEPER,
    ]);
    const before = (await execa('podman', ['container', 'inspect', '--format', '{{.State.StartedAt}}', svc]))
      .stdout;
    const err = await grpcError(
      unary(client.adoptContainers.bind(client), { service: svc, requestId: '' }, md),
    );
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toBe(
      `container "${svc}": volume "/etc:/x:ro" mounts /etc, which the restricted admission policy refuses (host system directory); ` +
        `to allow it for this service add [[admission.exceptions]] services = ["${svc}"] allow_bind = ["/etc:ro"] to agent.toml`,
    );
    expect(agent.registry!.services.get(svc)).toBeUndefined();
    const after = (await execa('podman', ['container', 'inspect', '--format', '{{.State.StartedAt}}', svc]))
      .stdout;
    expect(after).toBe(before);
    expect((await auditOf('AdoptContainers', svc))[0]).toMatchObject({
      outcome: AuditOutcome.AUDIT_OUTCOME_ERROR,
      errorCode: 'FAILED_PRECONDITION',
    });
  });

  it('refuses to adopt a privileged container in the host PID namespace', async () => {
    const svc = `${base}-priv`;
    await execa('podman', [
      'run',
      '--detach',
      `--name=${svc}`,
      '--privileged',
      '--pid=host',
      bed!.imageV1,
      ...SLEEPER,
    ]);
    const err = await grpcError(
      unary(client.adoptContainers.bind(client), { service: svc, requestId: '' }, md),
    );
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/PID namespace "host"/);
    expect(err.details).toMatch(/runs privileged/);
    expect(agent.registry!.services.get(svc)).toBeUndefined();
  });
});
