/**
 * podman: the runtime the project is tested on (podman 4.3 on Debian 12).
 * `podman ps -a --format json` lists every container in one call as a JSON array, with
 * `Names` an array, `Command` an array (the CMD, without entrypoint), `State` a word and
 * `StartedAt` in unix seconds (negative, Go's zero time, when never started).
 */
import {
  array,
  CliRuntime,
  type CliRuntimeOptions,
  parseJson,
  type RuntimeDialect,
  record,
  string,
  strings,
} from './cli.js';
import { type ContainerSummary, healthStatusOf, observedStateName } from './runtime.js';

export const podmanDialect: RuntimeDialect = {
  kind: 'podman',
  list: async (exec) => parsePodmanPs(await exec(['ps', '--all', '--format', 'json'])),
  // podman's rm -f still waits the stop timeout (10 s) first; -t 0 kills at once, like docker rm -f.
  forceRemoveArgs: ['--force', '--time', '0'],
  // podman 4.3 schedules health checks with systemd timers only: without systemd, `podman run`
  // logs "unable to get systemd connection to add healthchecks" and nothing runs them.
  schedulesHealthChecks: false,
  // podman takes the exec form as a JSON array: no shell needed in the image.
  healthCommandArg: (command) => JSON.stringify(command),
  // k8s-file, the default where journald is not, and json-file, which podman writes the same way.
  logFile: async (exec, name) => {
    const format = '{{.HostConfig.LogConfig.Type}}\t{{.HostConfig.LogConfig.Path}}';
    const [driver, path] = (await exec(['container', 'inspect', '--format', format, name]))
      .trim()
      .split('\t');
    return (driver === 'k8s-file' || driver === 'json-file') && path ? path : undefined;
  },
};

export function podmanRuntime(path = 'podman', options?: CliRuntimeOptions): CliRuntime {
  return new CliRuntime(podmanDialect, path, options);
}

export function parsePodmanPs(stdout: string): ContainerSummary[] {
  // podman prints nothing at all (not `[]`) on some versions when there are no containers.
  if (stdout.trim() === '') return [];
  return array(parseJson(stdout, 'ps')).map((item) => {
    const entry = record(item);
    const startedAt =
      typeof entry.StartedAt === 'number' && entry.StartedAt > 0
        ? new Date(entry.StartedAt * 1000)
        : undefined;
    const health = healthStatusOf(string(entry.Status));
    return {
      ...(health ? { health } : {}),
      name: strings(entry.Names)[0] ?? '',
      id: string(entry.Id),
      image: string(entry.Image),
      state: observedStateName(string(entry.State)),
      ...(startedAt ? { startedAt } : {}),
      command: strings(entry.Command),
    };
  });
}
