/**
 * The docker CLI's output shapes. `inspect` is FAKE DATA, labelled as such: hand-written in the
 * shape docker 24 prints. `createdContainer` was captured from docker 20.10 (Debian's docker.io),
 * trimmed to the fields read. The live engine is tested in
 * test/integration/runtime-podman.test.ts and engines.test.ts (scripts/testbed.sh --docker).
 */
import { describe, expect, it } from 'vitest';
import { containerEnv, parseImageEnv, parseInspect } from '../../agent/runtime/cli.js';
import { parseDockerInspectList } from '../../agent/runtime/docker.js';

const inspect = JSON.stringify([
  {
    Id: '4f6c1e0e2b7a9d0c8e5f3a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f',
    Created: '2024-05-01T10:00:00.123456789Z',
    Path: '/bin/httpd',
    Args: ['-f', '-p', '8080'],
    State: {
      Status: 'running',
      Running: true,
      Paused: false,
      Restarting: false,
      Dead: false,
      Pid: 4242,
      ExitCode: 0,
      StartedAt: '2024-05-01T10:00:01.5Z',
      FinishedAt: '0001-01-01T00:00:00Z',
    },
    Image: 'sha256:41da5362e8f0b36c0c5ab391a4047d267db570be96e72015b8534f06639d9057',
    Name: '/shop-web',
    RestartCount: 0,
    HostConfig: {
      Binds: ['/srv/web:/data:ro'],
      NetworkMode: 'default',
      PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }] },
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    },
    Config: {
      Hostname: '4f6c1e0e2b7a',
      User: '',
      Env: [
        'MODE=prod',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'MCP_TESTBED_IMAGE=bb:v1',
      ],
      Cmd: ['/bin/httpd', '-f', '-p', '8080'],
      Image: '127.0.0.1:5000/bb:v1',
      Entrypoint: null,
    },
    NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.2' } } },
  },
]);

// Captured from docker 20.10: `docker create` (never started), the CMD with a quoted argument.
const createdContainer = {
  Id: 'cde05d64451252170b4be0453f7078369bba3acb1cb56c15341a4768306749fd',
  Name: '/mcpt-capture',
  Image: 'sha256:264103792dcb5aa9d86dfc44b9001416554f513659af692ea16875c6c7819eaf',
  State: {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: '0001-01-01T00:00:00Z',
    FinishedAt: '0001-01-01T00:00:00Z',
  },
  HostConfig: { NetworkMode: 'default' },
  Config: {
    Cmd: ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'],
    Image: '127.0.0.1:5000/bb:v1',
    Entrypoint: null,
    Env: ['MCP_TESTBED_IMAGE=bb:v1'],
    Hostname: 'cde05d644512',
    User: '',
  },
};

describe('docker listing (container inspect of every id)', () => {
  it('reads each container with its exact CMD, its state and its start time when it has one', () => {
    const listing = JSON.stringify([...(JSON.parse(inspect) as unknown[]), createdContainer]);
    expect(parseDockerInspectList(listing)).toEqual([
      {
        name: 'shop-web',
        id: '4f6c1e0e2b7a9d0c8e5f3a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f',
        image: '127.0.0.1:5000/bb:v1',
        state: 'running',
        startedAt: new Date('2024-05-01T10:00:01.5Z'),
        command: ['/bin/httpd', '-f', '-p', '8080'],
      },
      {
        name: 'mcpt-capture',
        id: 'cde05d64451252170b4be0453f7078369bba3acb1cb56c15341a4768306749fd',
        image: '127.0.0.1:5000/bb:v1',
        state: 'created',
        command: ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'],
      },
    ]);
  });

  it('reads an empty listing', () => {
    expect(parseDockerInspectList('[]')).toEqual([]);
  });
});

describe('docker inspect (hand-written sample, no live engine)', () => {
  it("reads docker's shape like podman's: '/' before the name, restart `no`, network from Networks", () => {
    const details = parseInspect(inspect)!;
    expect(details).toMatchObject({
      name: 'shop-web',
      image: '127.0.0.1:5000/bb:v1',
      state: 'running',
      startedAt: new Date('2024-05-01T10:00:01.5Z'),
      cmd: ['/bin/httpd', '-f', '-p', '8080'],
      ports: ['127.0.0.1:18080:8080/tcp'],
      volumes: ['/srv/web:/data:ro'],
      network: 'bridge',
      user: '',
      restart: 'no',
    });
    const imageEnv = parseImageEnv(JSON.stringify([{ Config: { Env: ['MCP_TESTBED_IMAGE=bb:v1'] } }]));
    expect(containerEnv(details.rawEnv, imageEnv, details.hostname)).toEqual({ MODE: 'prod' });
  });
});
