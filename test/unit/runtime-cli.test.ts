/**
 * The CLI runtime's pure parts: the argv it builds, how it reads podman's JSON and how it
 * classifies failures. The podman samples were captured from podman 4.3.1 on the project's
 * test bed (fields the parser ignores trimmed); the live behaviour is covered by
 * test/integration/runtime-podman.test.ts.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CliRuntime,
  classifyFailure,
  containerEnv,
  parseImageEnv,
  parseInspect,
  RuntimeCommandError,
  runArgs,
} from '../../agent/runtime/cli.js';
import { parsePodmanPs, podmanDialect } from '../../agent/runtime/podman.js';
import { observedStateName } from '../../agent/runtime/runtime.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { ComponentSpec } from '../../gen/mcp/v1/mcp.js';

describe('runArgs', () => {
  it('turns a component spec into one run command, values in --flag=value form', () => {
    expect(
      runArgs({
        name: 'shop-web',
        image: 'registry.example:5000/web:v1',
        network: 'shop',
        user: '1000:1000',
        restart: 'always',
        ports: ['127.0.0.1:8080:80', '9090:90/udp'],
        volumes: ['/srv/shop:/data:ro'],
        cmd: ['/bin/httpd', '-f', '-p', '80'],
        env: { MODE: 'prod', EMPTY: '' },
      }),
    ).toEqual([
      'run',
      '--detach',
      '--name=shop-web',
      '--network=shop',
      '--user=1000:1000',
      '--restart=always',
      '--publish=127.0.0.1:8080:80',
      '--publish=9090:90/udp',
      '--volume=/srv/shop:/data:ro',
      '--env=MODE=prod',
      '--env=EMPTY=',
      'registry.example:5000/web:v1',
      '/bin/httpd',
      '-f',
      '-p',
      '80',
    ]);
  });

  it('runs an init process and records the stop timeout when the component asks', () => {
    expect(runArgs({ name: 'a', image: 'img', init: true, stopTimeoutSeconds: 3 })).toEqual([
      'run',
      '--detach',
      '--name=a',
      '--init',
      '--stop-timeout=3',
      'img',
    ]);
  });

  it('leaves out what the spec leaves empty', () => {
    expect(
      runArgs({ name: 'a', image: 'img', network: '', user: '', restart: '', ports: [], cmd: [] }),
    ).toEqual(['run', '--detach', '--name=a', 'img']);
  });

  it('accepts a generated ComponentSpec with the container name', () => {
    const spec = ComponentSpec.fromPartial({ name: 'web', image: 'img:v1' });
    expect(runArgs(spec)).toEqual(['run', '--detach', '--name=web', 'img:v1']);
  });

  it('refuses names and images that a CLI would read as flags', () => {
    expect(() => runArgs({ name: '--privileged', image: 'img' })).toThrow(InvalidArgumentError);
    expect(() => runArgs({ name: 'a', image: '--privileged' })).toThrow(InvalidArgumentError);
    expect(() => runArgs({ name: 'a', image: 'img', env: { 'A=B': 'c' } })).toThrow(InvalidArgumentError);
  });
});

describe('podman listing (captured from podman 4.3.1)', () => {
  const ps = JSON.stringify([
    {
      Command: ['/bin/httpd', '-f', '-p', '8080'],
      Id: 'a651d3802109d213cacc492c50dd01d9545477d899e1bcff3e5cf196f5825db4',
      Image: '127.0.0.1:5000/bb:v1',
      Names: ['web-probe'],
      StartedAt: 1795279822,
      State: 'running',
    },
    {
      Command: ['/bin/sleep', '3600'],
      Id: '1c54745acee20a3948cc5b62dc94bde77a0a699e8f60cd3a40b10b2647cb20bb',
      Image: 'localhost/bb:v2',
      Names: ['never-started'],
      StartedAt: -62135596800,
      State: 'created',
    },
  ]);

  it('reads names, states, start times and command arrays', () => {
    expect(parsePodmanPs(ps)).toEqual([
      {
        name: 'web-probe',
        id: 'a651d3802109d213cacc492c50dd01d9545477d899e1bcff3e5cf196f5825db4',
        image: '127.0.0.1:5000/bb:v1',
        state: 'running',
        startedAt: new Date(1795279822_000),
        command: ['/bin/httpd', '-f', '-p', '8080'],
      },
      {
        name: 'never-started',
        id: '1c54745acee20a3948cc5b62dc94bde77a0a699e8f60cd3a40b10b2647cb20bb',
        image: 'localhost/bb:v2',
        state: 'created',
        command: ['/bin/sleep', '3600'],
      },
    ]);
  });

  it('reads an empty listing', () => {
    expect(parsePodmanPs('[]')).toEqual([]);
    expect(parsePodmanPs('')).toEqual([]);
  });
});

describe('podman inspect (captured from podman 4.3.1)', () => {
  const inspect = JSON.stringify([
    {
      Id: 'a651d3802109d213cacc492c50dd01d9545477d899e1bcff3e5cf196f5825db4',
      Path: '/bin/httpd',
      Args: ['-f', '-p', '8080'],
      Image: '41da5362e8f0b36c0c5ab391a4047d267db570be96e72015b8534f06639d9057',
      ImageName: '127.0.0.1:5000/bb:v1',
      Name: 'web-probe',
      State: {
        Status: 'running',
        StartedAt: '2026-11-21T16:50:22.429769652Z',
        FinishedAt: '0001-01-01T00:00:00Z',
      },
      Config: {
        Hostname: 'a651d3802109',
        User: '65534:65534',
        Env: [
          'MCP_TESTBED_IMAGE=bb:v1',
          'FOO=bar',
          'SPACED=a b',
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          'TERM=xterm',
          'container=podman',
          'HOME=/',
          'HOSTNAME=a651d3802109',
        ],
        Cmd: ['/bin/httpd', '-f', '-p', '8080'],
        Image: '127.0.0.1:5000/bb:v1',
        Entrypoint: '',
      },
      HostConfig: {
        Binds: ['/tmp:/scratch:rw,rprivate,rbind', '/tmp/vol:/data:ro,rprivate,rbind'],
        NetworkMode: 'bridge',
        PortBindings: {
          '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }],
          '8443/udp': [{ HostIp: '', HostPort: '18443' }],
        },
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 0 },
      },
      NetworkSettings: { Networks: { podman: { IPAddress: '10.88.0.11' } } },
    },
  ]);
  const imageInspect = JSON.stringify([
    { Config: { Env: ['MCP_TESTBED_IMAGE=bb:v1'], Cmd: ['/bin/sleep', '3600'] } },
  ]);

  it('normalises ports, binds, network and restart policy', () => {
    const details = parseInspect(inspect);
    expect(details).toMatchObject({
      name: 'web-probe',
      image: '127.0.0.1:5000/bb:v1',
      imageId: '41da5362e8f0b36c0c5ab391a4047d267db570be96e72015b8534f06639d9057',
      state: 'running',
      startedAt: new Date('2026-11-21T16:50:22.429Z'),
      cmd: ['/bin/httpd', '-f', '-p', '8080'],
      command: ['/bin/httpd', '-f', '-p', '8080'],
      ports: ['127.0.0.1:18080:8080/tcp', '18443:8443/udp'],
      volumes: ['/tmp/vol:/data:ro', '/tmp:/scratch'],
      network: 'podman',
      user: '65534:65534',
      restart: 'on-failure',
    });
  });

  it("keeps the env the container was given, not the image's or podman's", () => {
    const details = parseInspect(inspect)!;
    expect(containerEnv(details.rawEnv, parseImageEnv(imageInspect), details.hostname)).toEqual({
      FOO: 'bar',
      SPACED: 'a b',
    });
  });

  it('keeps a variable the container set to something other than the default', () => {
    expect(containerEnv(['PATH=/opt/bin', 'TERM=dumb', 'HOME=/home/app'], [], 'h')).toEqual({
      PATH: '/opt/bin',
      TERM: 'dumb',
      HOME: '/home/app',
    });
  });

  it('reads an empty answer as no container', () => {
    expect(parseInspect('[]')).toBeUndefined();
  });
});

describe('observedStateName', () => {
  it.each([
    ['running', 'running'],
    ['exited', 'exited'],
    ['stopped', 'exited'],
    ['dead', 'exited'],
    ['created', 'created'],
    ['configured', 'created'],
    ['initialized', 'created'],
    ['paused', 'paused'],
    ['restarting', 'restarting'],
    ['removing', 'unknown'],
    ['', 'unknown'],
  ])('maps %j to %j', (runtimeState, name) => {
    expect(observedStateName(runtimeState)).toBe(name);
  });
});

describe('classifyFailure', () => {
  it.each([
    [
      'Error: initializing source docker://127.0.0.1:5000/bb:nope: reading manifest nope in 127.0.0.1:5000/bb: manifest unknown: manifest unknown',
      'NOT_FOUND',
    ],
    [
      'Error: creating container storage: the container name "web" is already in use by 1c54. You have to remove that container to be able to reuse that name: that name is already in use',
      'ALREADY_EXISTS',
    ],
    [
      'Error: initializing source docker://127.0.0.1:5999/bb:v1: pinging container registry 127.0.0.1:5999: Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
      'UNAVAILABLE',
    ],
    ['Error: rootlessport listen tcp 127.0.0.1:8080: bind: address already in use', 'FAILED_PRECONDITION'],
    ['Error: invalid restart policy "sometimes"', 'FAILED_PRECONDITION'],
  ])('%s → %s', (stderr, code) => {
    expect(classifyFailure(stderr)).toBe(code);
  });
});

describe('the one line a failed runtime command is reported as', () => {
  const failure = (argv: string[], stderr: string) =>
    new RuntimeCommandError(classifyFailure(stderr), {
      argv,
      exitCode: 125,
      stderr,
      reason: 'exit code 125',
    });

  it('says an image is not in the registry, without the command or podman’s wording', () => {
    const err = failure(
      ['podman', 'pull', '127.0.0.1:5000/bb:nope'],
      'Trying to pull 127.0.0.1:5000/bb:nope...\nError: initializing source docker://127.0.0.1:5000/bb:nope: reading manifest nope in 127.0.0.1:5000/bb: manifest unknown: manifest unknown',
    );
    expect(err.summary).toBe('image 127.0.0.1:5000/bb:nope not found in the registry');
    // The whole story stays in the message, for the agent's log.
    expect(err.message).toContain('podman pull 127.0.0.1:5000/bb:nope failed (exit code 125): ');
  });

  it('keeps the runtime’s last error line otherwise, cut to 200 characters', () => {
    const err = failure(
      ['podman', 'run', '--detach', '--name=web', 'img'],
      'warning: something\nError: rootlessport listen tcp 127.0.0.1:8080: bind: address already in use',
    );
    expect(err.summary).toBe('rootlessport listen tcp 127.0.0.1:8080: bind: address already in use');
    expect(failure(['podman', 'run', 'img'], `Error: ${'x'.repeat(500)}`).summary).toHaveLength(203);
  });

  it('names the command when the runtime said nothing', () => {
    expect(failure(['/usr/bin/podman', 'stop', '-t', '10', 'web'], '').summary).toBe(
      'podman stop exit code 125',
    );
  });
});

describe('a log read that never reaches the end of the log', () => {
  it('stops at its deadline and returns what it read, saying why it stopped early', async () => {
    // A fake runtime (a real podman cannot be made to read forever on cue): a container that
    // logs to journald, which podman reads with `logs`; it prints two log lines and then keeps
    // reading, as podman does behind a container that writes faster than it reads while
    // `since` filters out every line.
    const fake = fakePodman('echo one\necho two\nexec sleep 30');
    try {
      const runtime = new CliRuntime(podmanDialect, fake, { logReadDeadlineMs: 300 });
      const read = await runtime.logs('web-app', { tail: 100, maxBytes: 16384 });
      expect(read.text).toBe('one\ntwo\n');
      expect(read.truncated).toBe(false);
      expect(read.incomplete).toMatch(/^stopped reading after 0.3 s: the container writes faster/);
    } finally {
      rmSync(dirname(fake), { recursive: true, force: true });
    }
  });
});

describe('a log read through the runtime under the byte cap', () => {
  const numbered = 'i=1; while [ $i -le 100 ]; do echo "line $i"; i=$((i+1)); done';

  it('keeps the newest lines that fit, whole, and counts the older bytes it left out', async () => {
    const fake = fakePodman(numbered);
    try {
      const read = await new CliRuntime(podmanDialect, fake).logs('web-app', { tail: 100, maxBytes: 40 });
      expect(read.text).toBe('line 97\nline 98\nline 99\nline 100\n');
      expect(read.truncated).toBe(true);
      const all = Array.from({ length: 100 }, (_, i) => `line ${i + 1}\n`).join('');
      expect(read.bytesDropped).toBe(all.length - read.text.length);
    } finally {
      rmSync(dirname(fake), { recursive: true, force: true });
    }
  });

  it('keeps the end of a line longer than the cap alone, from a character start', async () => {
    const fake = fakePodman("printf 'first\\n'; printf '%.0sé' $(seq 1 50); printf '\\n'");
    try {
      const read = await new CliRuntime(podmanDialect, fake).logs('web-app', { tail: 100, maxBytes: 10 });
      expect(read.text).toBe('éééé\n');
      expect(read.bytesDropped).toBe('first\n'.length + 100 + 1 - Buffer.byteLength(read.text));
    } finally {
      rmSync(dirname(fake), { recursive: true, force: true });
    }
  });
});

/** A podman whose containers log to journald (so read with `logs`), printing `logs` as `script`. */
function fakePodman(script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-fake-podman-'));
  const fake = join(dir, 'podman');
  const inspect = 'if [ "$1" = container ] && [ "$2" = inspect ]; then printf \'journald\\t\\n\'; exit 0; fi';
  writeFileSync(fake, `#!/bin/sh\n${inspect}\n${script}\n`);
  chmodSync(fake, 0o755);
  return fake;
}
