/**
 * The container engines of the test bed, for tests that run against both: podman (the
 * default) and docker, whose daemon scripts/testbed.sh starts on its own socket.
 *
 *   for (const kind of ENGINE_KINDS) {
 *     const engine = await requireEngine(kind);
 *     describe.skipIf(!engine)(`${kind} ...`, () => { ... });
 *   }
 *
 * Like requireTestbed(): on CI a missing engine fails the run instead of skipping.
 *
 * The docker CLI finds the test bed's daemon through DOCKER_HOST, which requireEngine('docker')
 * sets in this process's environment: an in-process agent and a child-process agent then reach
 * it the way a production agent does (DOCKER_HOST in its environment, see
 * deploy/examples/agent.toml). Vitest runs each test file in its own process (`pool: 'forks'`),
 * so the setting does not leak into other files.
 */
import { execa } from 'execa';
import type { RuntimeKind } from '../../agent/runtime/index.js';
import { removeContainers, requireTestbed, type Testbed } from './testbed.js';

export const ENGINE_KINDS: readonly RuntimeKind[] = ['podman', 'docker'];

/** Where scripts/testbed.sh starts dockerd (`scripts/testbed.sh --docker`). */
export const TESTBED_DOCKER_HOST = 'unix:///run/mcp-testbed/docker.sock';
/**
 * The docker CLI of Debian's docker.io, by path: a machine may have another docker CLI earlier
 * on PATH (this one has a static 28.x client in /usr/local/bin), and the tests pin the version
 * they say they test.
 */
export const TESTBED_DOCKER_CLI = '/usr/bin/docker';
/**
 * The user-defined bridge network the test bed creates for docker. dockerd runs with
 * `--bridge=none` (no docker0 beside podman's podman0), so its default network has no
 * interface and cannot publish ports; containers that publish ports join this one.
 */
export const TESTBED_DOCKER_NETWORK = 'mcp-testbed';

export interface TestEngine extends Testbed {
  readonly kind: RuntimeKind;
  /** The CLI the runtime calls: `podman` on PATH, or TESTBED_DOCKER_CLI. */
  readonly cli: string;
  /** The network for containers that publish ports; undefined for the engine's default. */
  readonly portNetwork: string | undefined;
  /** What `inspect` reports as the network of such a container. */
  readonly portNetworkName: string;
  /** Removes (killing if needed) every container whose name starts with `prefix`. */
  removeContainers(prefix: string): Promise<void>;
}

const probed = new Map<RuntimeKind, Promise<string | undefined>>();

/**
 * The engine if it is usable. Otherwise: throws when `CI` is set, else warns with the reason
 * and returns undefined so the caller can skip.
 */
export async function requireEngine(kind: RuntimeKind): Promise<TestEngine | undefined> {
  const bed = await requireTestbed();
  if (!bed) return undefined; // requireTestbed has warned (or thrown on CI)
  if (kind === 'podman') {
    return {
      ...bed,
      kind,
      cli: bed.podman,
      portNetwork: undefined,
      portNetworkName: 'podman',
      removeContainers: (prefix) => removeContainers(prefix, bed.podman),
    };
  }
  process.env.DOCKER_HOST = TESTBED_DOCKER_HOST;
  if (!probed.has(kind)) probed.set(kind, findDockerProblem(bed));
  const problem = await probed.get(kind);
  if (problem === undefined) {
    return {
      ...bed,
      kind,
      cli: TESTBED_DOCKER_CLI,
      portNetwork: TESTBED_DOCKER_NETWORK,
      portNetworkName: TESTBED_DOCKER_NETWORK,
      removeContainers: removeDockerContainers,
    };
  }
  const missing = 'the docker test bed is missing: run scripts/testbed.sh --docker as root';
  if (process.env.CI) throw new Error(`${missing} (${problem})`);
  console.warn(`skipping docker integration tests: ${missing} (${problem})`);
  return undefined;
}

/** What keeps the test bed's dockerd from running our tests, or undefined when it can. */
async function findDockerProblem(bed: Testbed): Promise<string | undefined> {
  const version = await execa(TESTBED_DOCKER_CLI, ['version', '--format', '{{.Server.Version}}'], {
    reject: false,
    timeout: 10_000,
  });
  if (version.failed) {
    return `no docker daemon answers on ${TESTBED_DOCKER_HOST} through ${TESTBED_DOCKER_CLI}: ${version.stderr.trim() || version.shortMessage}`;
  }
  const network = await execa(TESTBED_DOCKER_CLI, ['network', 'inspect', TESTBED_DOCKER_NETWORK], {
    reject: false,
  });
  if (network.failed) return `docker has no network '${TESTBED_DOCKER_NETWORK}'`;
  const run = await execa(
    TESTBED_DOCKER_CLI,
    ['run', '--rm', `--network=${TESTBED_DOCKER_NETWORK}`, bed.imageV1, '/bin/true'],
    { reject: false, timeout: 60_000 },
  );
  if (run.failed) return `docker run fails: ${run.stderr.trim() || run.shortMessage}`;
  return undefined;
}

async function removeDockerContainers(prefix: string): Promise<void> {
  const listed = await execa(TESTBED_DOCKER_CLI, ['ps', '--all', '--format', '{{.Names}}'], {
    reject: false,
  });
  if (listed.failed) return;
  const names = listed.stdout.split('\n').filter((name) => name.startsWith(prefix));
  if (names.length > 0) await execa(TESTBED_DOCKER_CLI, ['rm', '--force', ...names], { reject: false });
}
