/**
 * The container runtime against real engines and a real registry (scripts/testbed.sh): the
 * same cases for podman and for docker (`scripts/testbed.sh --docker`); where the engines
 * word things differently, ENGINE_WORDS says how. Containers are named
 * `mcpt-rt-<pid>-<random>-...` and removed afterwards.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type RunSpec, RuntimeCommandError } from '../../agent/runtime/index.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import { ENGINE_KINDS, requireEngine } from '../support/engines.js';
import { freePort, uniqueName } from '../support/testbed.js';

/** What each engine says where they differ. */
const ENGINE_WORDS = {
  podman: {
    removeRunning: /^podman rm \S+ failed \(exit code 2\): .*as it is running/,
    pullExitCode: 125,
  },
  docker: {
    removeRunning:
      /^\/usr\/bin\/docker rm \S+ failed \(exit code 1\): .*You cannot remove a running container/,
    pullExitCode: 1,
  },
} as const;

describe('a runtime binary that is not there', () => {
  it('fails with FAILED_PRECONDITION saying where it looked and what to do', async () => {
    const runtime = createRuntime('podman', '/nonexistent/bin/podman');
    const error = await runtime.version().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect((error as Error).message).toBe(
      "container runtime 'podman' not found at '/nonexistent/bin/podman' (ENOENT): install it or set container_runtime/runtime_path",
    );
  });

  it('says so for a file that is not executable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-runtime-'));
    const notExecutable = join(dir, 'podman');
    await writeFile(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
    try {
      await expect(createRuntime('podman', notExecutable).version()).rejects.toMatchObject({
        code: 'FAILED_PRECONDITION',
        message: expect.stringContaining(`not executable at '${notExecutable}' (EACCES)`),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says so for a docker CLI missing from PATH too', async () => {
    const runtime = createRuntime('docker', 'no-such-docker-cli');
    await expect(runtime.list()).rejects.toThrow(/container runtime 'docker' not found on PATH/);
  });
});

for (const kind of ENGINE_KINDS) {
  const bed = await requireEngine(kind);
  const words = ENGINE_WORDS[kind];

  describe.skipIf(!bed)(`${kind} runtime (real ${kind}, local registry)`, () => {
    const runtime = createRuntime(kind, bed?.cli);
    const prefix = uniqueName('mcpt-rt');
    const name = `${prefix}-web`;
    let hostDir: string;
    let spec: RunSpec;
    let port: number;

    beforeAll(async () => {
      hostDir = await mkdtemp(join(tmpdir(), 'mcp-runtime-'));
      await writeFile(join(hostDir, 'hello.txt'), 'from the host\n');
      await chmod(hostDir, 0o755); // the container runs as nobody
      port = await freePort();
      spec = {
        name,
        image: bed!.imageV1,
        network: bed!.portNetwork,
        user: '65534:65534',
        restart: 'on-failure',
        // busybox httpd serves its working directory, `/`: /www/index.html from the image, /data from the host.
        cmd: ['/bin/httpd', '-f', '-p', '8080'],
        ports: [`127.0.0.1:${port}:8080`],
        volumes: [`${hostDir}:/data:ro`],
        env: { GREETING: 'hello world', EMPTY: '' },
      };
      await runtime.pull(bed!.imageV1);
    });

    afterAll(async () => {
      await bed?.removeContainers(prefix);
      if (hostDir) await rm(hostDir, { recursive: true, force: true });
    });

    it('reports its version', async () => {
      expect(await runtime.version()).toMatch(/^\d+\.\d+\.\d+/);
    });

    /** No container named `name`, whatever an earlier case left. */
    const removeWeb = () => runtime.remove(name, { force: true }).catch(() => undefined);

    it('runs a container that serves the image and the mounted folder over HTTP', async () => {
      await removeWeb();
      const id = await runtime.run(spec);
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(await httpGet(port, '/www/index.html')).toBe('bb v1\n');
      expect(await httpGet(port, '/data/hello.txt')).toBe('from the host\n');
      await removeWeb();
    });

    // Each case below gets its own freshly run container, so they pass in any order.
    describe('a running container', () => {
      beforeEach(async () => {
        await removeWeb();
        await runtime.run(spec);
      });

      afterEach(removeWeb);

      it('inspects the container as it was given', async () => {
        const details = await runtime.inspect(name);
        expect(details).toMatchObject({
          name,
          image: bed!.imageV1,
          state: 'running',
          cmd: ['/bin/httpd', '-f', '-p', '8080'],
          command: ['/bin/httpd', '-f', '-p', '8080'],
          ports: [`127.0.0.1:${port}:8080/tcp`],
          volumes: [`${hostDir}:/data:ro`],
          // The image's own MCP_TESTBED_IMAGE and the engine's PATH/TERM/HOME/HOSTNAME are left out.
          env: { GREETING: 'hello world', EMPTY: '' },
          network: bed!.portNetworkName,
          user: '65534:65534',
          restart: 'on-failure',
        });
        expect(details?.startedAt).toBeInstanceOf(Date);
      });

      it('lists it with its command as an array', async () => {
        const listed = (await runtime.list()).find((container) => container.name === name);
        expect(listed).toMatchObject({ name, image: bed!.imageV1, state: 'running', command: spec.cmd });
        expect(listed?.id).toMatch(/^[0-9a-f]{64}$/);
        // podman's listing has whole seconds, inspect nanoseconds.
        const started = (await runtime.inspect(name))!.startedAt!.getTime();
        expect(Math.abs(listed!.startedAt!.getTime() - started)).toBeLessThan(1000);
      });

      it('refuses a second container with the same name', async () => {
        await expect(runtime.run(spec)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      });

      it('stops, starts and restarts it, the state following', async () => {
        // httpd as PID 1 ignores SIGTERM: a 1 s timeout keeps the stop short.
        await runtime.stop(name, { timeoutSeconds: 1 });
        expect((await runtime.inspect(name))?.state).toBe('exited');
        expect((await runtime.list()).find((container) => container.name === name)?.state).toBe('exited');

        await runtime.start(name);
        const started = await runtime.inspect(name);
        expect(started?.state).toBe('running');
        expect(await httpGet(port, '/www/index.html')).toBe('bb v1\n');

        await runtime.restart(name, { timeoutSeconds: 1 });
        const restarted = await runtime.inspect(name);
        expect(restarted?.state).toBe('running');
        expect(restarted!.startedAt!.getTime()).toBeGreaterThan(started!.startedAt!.getTime());
      });

      it('removes it, after which it is missing', async () => {
        await expect(runtime.remove(name)).rejects.toMatchObject({
          code: 'FAILED_PRECONDITION',
          message: expect.stringMatching(words.removeRunning),
        });
        await runtime.remove(name, { force: true });
        expect(await runtime.inspect(name)).toBeUndefined();
        expect((await runtime.list()).some((container) => container.name === name)).toBe(false);
      });
    });

    it('says NOT_FOUND for operations on a container that does not exist', async () => {
      const missing = `${prefix}-missing`;
      expect(await runtime.inspect(missing)).toBeUndefined();
      for (const operation of [
        () => runtime.start(missing),
        () => runtime.stop(missing, { timeoutSeconds: 1 }),
        () => runtime.restart(missing, { timeoutSeconds: 1 }),
        () => runtime.remove(missing),
      ]) {
        const error = await operation().catch((err: unknown) => err);
        expect(error).toBeInstanceOf(NotFoundError);
        expect((error as Error).message).toBe(`no container named '${missing}' (${kind})`);
      }
    });

    it('reads a line longer than the log buffer whole, and keeps the newest lines under the cap', async () => {
      // conmon and dockerd store a 20,000-byte line in pieces; podman 4.3's own `logs --tail`
      // would join the first piece to the line before it.
      const chatty = `${prefix}-long-line`;
      const long = 'x'.repeat(20_000);
      await runtime.run({
        name: chatty,
        image: bed!.imageV1,
        cmd: [
          '/bin/sh',
          '-c',
          "printf 'before\\n'; head -c 20000 /dev/zero | tr '\\0' x; printf '\\nafter\\n'; exec sleep 600",
        ],
      });
      const whole = { tail: 100, maxBytes: 65_536 };
      const deadline = Date.now() + 10_000;
      let read = await runtime.logs(chatty, whole);
      while (!read.text.endsWith('after\n') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        read = await runtime.logs(chatty, whole);
      }
      expect(read).toEqual({ text: `before\n${long}\nafter\n`, truncated: false, bytesDropped: 0 });
      expect(await runtime.logs(chatty, { tail: 100, maxBytes: 100 })).toEqual({
        text: 'after\n',
        truncated: true,
        bytesDropped: 'before\n'.length + long.length + 1,
      });
      await runtime.remove(chatty, { force: true });
    });

    it('pulls a tag from the registry', async () => {
      await runtime.pull(bed!.imageV2);
    });

    it("fails a pull of a missing tag with the registry's own words", async () => {
      const error = await runtime.pull(`${bed!.registry}/bb:no-such-tag`).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(RuntimeCommandError);
      const failure = error as RuntimeCommandError;
      expect(failure.code).toBe('NOT_FOUND');
      expect(failure.argv).toEqual([bed!.cli, 'pull', `${bed!.registry}/bb:no-such-tag`]);
      expect(failure.exitCode).toBe(words.pullExitCode);
      expect(failure.message).toMatch(
        new RegExp(
          `^${bed!.cli} pull ${bed!.registry}/bb:no-such-tag failed \\(exit code ${words.pullExitCode}\\): .*manifest unknown`,
        ),
      );
    });

    it('leaves no half-created container behind when the command is not in the image, and hides env values', async () => {
      const broken = `${prefix}-broken`;
      const error = await runtime
        .run({ name: broken, image: bed!.imageV1, cmd: ['/bin/no-such-command'], env: { TOKEN: 's3cret' } })
        .catch((err: unknown) => err);
      expect(error).toBeInstanceOf(RuntimeCommandError);
      const message = (error as Error).message;
      expect(message).toMatch(/no such file or directory/);
      expect(message).toContain('--env=TOKEN=***');
      expect(message).not.toContain('s3cret');
      expect(message).toContain('(the half-created container was removed)');
      expect(await runtime.inspect(broken)).toBeUndefined();
    });
  });
}

const podman = await requireEngine('podman');

describe.skipIf(!podman)('a command line the operating system refuses (real podman)', () => {
  const bed = podman;
  it('is INVALID_ARGUMENT naming the variable and the limit, without its value, and leaves no container', async () => {
    const runtime = createRuntime('podman', bed?.cli);
    const name = uniqueName('mcpt-e2big');
    const value = 'v'.repeat(200 * 1024);
    const error = await runtime
      .run({ name, image: bed!.imageV1, env: { SMALL: 'x', HUGE_SETTING: value } })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const message = (error as Error).message;
    expect(message).toContain('E2BIG');
    expect(message).toContain('value of environment variable HUGE_SETTING is 204800 bytes');
    expect(message).toContain('at most 131072 bytes in one argument');
    expect(message).not.toContain('vvvvvvvv');
    expect(await runtime.inspect(name)).toBeUndefined();
  });
});

describe.skipIf(!podman)('the log of a container that podman empties at its max size (real podman)', () => {
  it('reads consecutive whole lines every time, however often conmon starts the file again', async () => {
    const bed = podman;
    const name = uniqueName('mcpt-logmax');
    // The runtime sets no log options: podman run directly, as containers.conf's log_size_max would.
    const loop = 'trap "exit 0" TERM; i=0; while true; do echo line $i; i=$((i+1)); done';
    await execa(bed!.cli, [
      'run',
      '--detach',
      `--name=${name}`,
      '--log-opt=max-size=200k',
      bed!.imageV1,
      '/bin/sh',
      '-c',
      loop,
    ]);
    try {
      const runtime = createRuntime('podman', bed?.cli);
      let first = 0;
      for (let read = 0; read < 40; read++) {
        const { text } = await runtime.logs(name, { tail: 1000, maxBytes: 65_536 });
        const lines = text.split('\n');
        lines.pop(); // the line conmon may be writing
        first = Number(/^line (\d+)$/.exec(lines[0] ?? '')?.[1] ?? 0);
        expect(lines).toEqual(lines.map((_, i) => `line ${first + i}`));
      }
      // 200 KB hold about 17,000 such lines: numbers past that mean the file was emptied.
      expect(first).toBeGreaterThan(50_000);
    } finally {
      await execa(bed!.cli, ['rm', '--force', '--time=0', name]);
    }
  }, 120_000);
});

/** GET from the container's published port, retrying while httpd starts. */
async function httpGet(port: number, path: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
      if (!response.ok) throw new Error(`HTTP ${response.status} for ${path}`);
      return await response.text();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
