/**
 * The docker CLI, tested live against Debian's docker.io (Engine and CLI 20.10) in
 * test/integration/runtime-podman.test.ts and engines.test.ts. Every flag the agent uses is
 * podman's too; only the listing differs. `docker ps --format '{{json .}}'` prints one object
 * per line whose `Command` is entrypoint and CMD joined into one quoted string (an argument
 * with a space in it cannot be told apart) and which has no start time. So the listing is two
 * calls: `ps --quiet` for the ids, then one `container inspect` of all of them, which gives the
 * exact CMD, the state and the start time, as podman's `ps --format json` does in one.
 */
import {
  array,
  CliRuntime,
  type CliRuntimeOptions,
  inspectedContainer,
  isNoSuchContainer,
  parseJson,
  type RuntimeDialect,
  type RuntimeExec,
  record,
} from './cli.js';
import type { ContainerSummary } from './runtime.js';

/** How often to list again when a container goes away between `ps` and `inspect`. */
const LIST_ATTEMPTS = 3;

export const dockerDialect: RuntimeDialect = {
  kind: 'docker',
  list: listDockerContainers,
  forceRemoveArgs: ['--force'],
  schedulesHealthChecks: true,
  // The docker CLI has only the shell form (CMD-SHELL): the argv is quoted for /bin/sh, which
  // the image must therefore have.
  healthCommandArg: (command) => command.map(shellQuote).join(' '),
};

/** One argument for a POSIX shell, quoted so nothing in it is interpreted. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function dockerRuntime(path = 'docker', options?: CliRuntimeOptions): CliRuntime {
  return new CliRuntime(dockerDialect, path, options);
}

async function listDockerContainers(exec: RuntimeExec): Promise<ContainerSummary[]> {
  for (let attempt = 1; ; attempt++) {
    const ids = (await exec(['ps', '--all', '--quiet', '--no-trunc']))
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '');
    if (ids.length === 0) return [];
    try {
      return parseDockerInspectList(await exec(['container', 'inspect', ...ids]));
    } catch (err) {
      // Removed between the two calls: docker fails the whole inspect, so list again.
      if (attempt < LIST_ATTEMPTS && isNoSuchContainer(err)) continue;
      throw err;
    }
  }
}

/** `docker container inspect <ids...>` output → one summary per container. */
export function parseDockerInspectList(stdout: string): ContainerSummary[] {
  return array(parseJson(stdout, 'container inspect')).map((item) => {
    const { name, id, image, state, startedAt, cmd, health } = inspectedContainer(record(item));
    return {
      name,
      id,
      image,
      state,
      ...(startedAt ? { startedAt } : {}),
      command: cmd,
      ...(health ? { health } : {}),
    };
  });
}
