/**
 * The docker CLI's output shapes. FAKE DATA, labelled as such: no docker engine runs on the
 * project's machines, so these samples are hand-written in the shape docker 24 prints
 * (`docker ps -a --no-trunc --format '{{json .}}'`, `docker container inspect`), not captured
 * from a live engine. The run/stop/rm argv is shared with podman and tested live there.
 */
import { describe, expect, it } from 'vitest';
import { containerEnv, parseImageEnv, parseInspect } from '../../agent/runtime/cli.js';
import { parseDockerPs } from '../../agent/runtime/docker.js';

const ps = [
  '{"Command":"\\"/bin/httpd -f -p 8080\\"","CreatedAt":"2024-05-01 10:00:00 +0000 UTC","ID":"4f6c1e0e2b7a9d0c8e5f3a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f","Image":"127.0.0.1:5000/bb:v1","Labels":"","LocalVolumes":"0","Mounts":"/srv/web","Names":"shop-web","Networks":"bridge","Ports":"127.0.0.1:18080->8080/tcp","RunningFor":"2 minutes ago","Size":"0B","State":"running","Status":"Up 2 minutes"}',
  '{"Command":"\\"/bin/sleep 3600\\"","CreatedAt":"2024-05-01 09:00:00 +0000 UTC","ID":"9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081","Image":"127.0.0.1:5000/bb:v2","Labels":"","LocalVolumes":"0","Mounts":"","Names":"shop","Networks":"bridge","Ports":"","RunningFor":"1 hour ago","Size":"0B","State":"exited","Status":"Exited (137) 5 minutes ago"}',
  '',
].join('\n');

// Docker before 20.10: no State field, and legacy link names after a comma.
const oldPs = [
  '{"Command":"\\"/bin/sleep 3600\\"","ID":"aa","Image":"bb","Names":"old,other/alias","Status":"Up 3 hours (Paused)"}',
  '{"Command":"\\"/bin/sleep 3600\\"","ID":"bb","Image":"bb","Names":"never","Status":"Created"}',
].join('\n');

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

describe('docker listing (hand-written samples, no live engine)', () => {
  it('reads one JSON object per line, Names as a string and Command as one quoted string', () => {
    expect(parseDockerPs(ps)).toEqual([
      {
        name: 'shop-web',
        id: '4f6c1e0e2b7a9d0c8e5f3a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f',
        image: '127.0.0.1:5000/bb:v1',
        state: 'running',
        command: ['/bin/httpd', '-f', '-p', '8080'],
      },
      {
        name: 'shop',
        id: '9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081',
        image: '127.0.0.1:5000/bb:v2',
        state: 'exited',
        command: ['/bin/sleep', '3600'],
      },
    ]);
  });

  it('reads the state from Status on old docker CLIs and the first of several names', () => {
    expect(parseDockerPs(oldPs).map(({ name, state }) => ({ name, state }))).toEqual([
      { name: 'old', state: 'paused' },
      { name: 'never', state: 'created' },
    ]);
  });

  it('reads an empty listing', () => {
    expect(parseDockerPs('')).toEqual([]);
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
