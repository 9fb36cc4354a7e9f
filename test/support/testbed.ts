/**
 * The podman test bed (scripts/testbed.sh) as integration tests see it.
 *
 *   const bed = await requireTestbed();
 *   describe.skipIf(!bed)('podman runtime', () => { ... });
 *
 * On CI a missing test bed fails the run instead of silently skipping the tests.
 */
import { createServer } from 'node:net';
import { execa } from 'execa';

export interface Testbed {
  /** The local OCI registry, plain HTTP, marked insecure in registries.conf.d. */
  readonly registry: string;
  /** `127.0.0.1:5000/bb:v1`: busybox, CMD sleep 3600, /www/index.html says `bb v1`. */
  readonly imageV1: string;
  /** Like v1; /www/index.html says `bb v2`. */
  readonly imageV2: string;
  /** The podman binary. */
  readonly podman: string;
}

const REGISTRY = '127.0.0.1:5000';
const PODMAN = 'podman';
const MISSING = 'the podman test bed is missing: run scripts/testbed.sh as root';

let probed: Promise<string | undefined> | undefined;

/**
 * The test bed if podman and the registry are usable. Otherwise: throws when `CI` is set,
 * else warns with the reason and returns undefined so the caller can skip.
 */
export async function requireTestbed(): Promise<Testbed | undefined> {
  probed ??= findProblem();
  const problem = await probed;
  if (problem === undefined) {
    return { registry: REGISTRY, imageV1: `${REGISTRY}/bb:v1`, imageV2: `${REGISTRY}/bb:v2`, podman: PODMAN };
  }
  if (process.env.CI) throw new Error(`${MISSING} (${problem})`);
  console.warn(`skipping podman integration tests: ${MISSING} (${problem})`);
  return undefined;
}

/** What is wrong with the test bed, or undefined when it is usable. */
async function findProblem(): Promise<string | undefined> {
  const version = await execa(PODMAN, ['version', '--format', '{{.Client.Version}}'], { reject: false });
  if (version.failed) return `podman does not run: ${version.stderr.trim() || version.shortMessage}`;
  try {
    const response = await fetch(`http://${REGISTRY}/v2/bb/tags/list`, { signal: AbortSignal.timeout(3000) });
    const body = (await response.json()) as { tags?: string[] };
    for (const tag of ['v1', 'v2']) {
      if (!body.tags?.includes(tag)) return `the registry on ${REGISTRY} has no bb:${tag}`;
    }
  } catch (err) {
    return `no registry answers on http://${REGISTRY}/v2/ (${err instanceof Error ? err.message : String(err)})`;
  }
  const run = await execa(PODMAN, ['run', '--rm', 'localhost/bb:v1', '/bin/true'], {
    reject: false,
    timeout: 60_000,
  });
  if (run.failed) return `podman run fails: ${run.stderr.trim() || run.shortMessage}`;
  return undefined;
}

/** A name no other test run uses: `<prefix>-<pid>-<random>`, valid for services and containers. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Removes (killing if needed) every container whose name starts with `prefix`. */
export async function removeContainers(prefix: string, podman = PODMAN): Promise<void> {
  const listed = await execa(podman, ['ps', '--all', '--format', '{{.Names}}'], { reject: false });
  if (listed.failed) return;
  const names = listed.stdout.split('\n').filter((name) => name.startsWith(prefix));
  if (names.length > 0) await execa(podman, ['rm', '--force', '--time', '0', ...names], { reject: false });
}

/**
 * A TCP port on 127.0.0.1 free at the time of the call, for a container to publish. It is
 * taken below the kernel's ephemeral range (32768-60999 here), where every agent's
 * `listen = "127.0.0.1:0"` port comes from: a published port is a NAT rule, not a bound
 * socket, so an agent given the same port would have its connections sent to the container.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await isFree(port)) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
