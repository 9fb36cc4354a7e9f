/**
 * The docker CLI, a second implementation with the same flags as podman. Only the listing
 * differs: `docker ps --format '{{json .}}'` prints one JSON object per line, `Names` a
 * comma-separated string, `Command` the entrypoint and CMD joined into one quoted string,
 * and no start time. Not tested against a live engine (none on the project's machines):
 * see test/unit/runtime-docker.test.ts.
 */
import { CliRuntime, type CliRuntimeOptions, parseJson, type RuntimeDialect, record, string } from './cli.js';
import { type ContainerSummary, type ObservedStateName, observedStateName } from './runtime.js';

export const dockerDialect: RuntimeDialect = {
  kind: 'docker',
  listArgs: ['ps', '--all', '--no-trunc', '--format', '{{json .}}'],
  parseList: parseDockerPs,
  forceRemoveArgs: ['--force'],
};

export function dockerRuntime(path = 'docker', options?: CliRuntimeOptions): CliRuntime {
  return new CliRuntime(dockerDialect, path, options);
}

export function parseDockerPs(stdout: string): ContainerSummary[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const entry = record(parseJson(line, 'ps'));
      return {
        name: string(entry.Names).split(',')[0] ?? '',
        id: string(entry.ID),
        image: string(entry.Image),
        state: entry.State ? observedStateName(string(entry.State)) : stateFromStatus(string(entry.Status)),
        command: splitCommand(string(entry.Command)),
      };
    });
}

/** `"/bin/httpd -f -p 8080"` (quotes included) → its words. Lossy for arguments with spaces. */
function splitCommand(command: string): string[] {
  const unquoted = command.replace(/^"(.*)"$/s, '$1');
  return unquoted.split(' ').filter((word) => word !== '');
}

/** Docker CLIs before 20.10 have no `State` in ps: read it from `Status` ("Up 2 minutes (Paused)"). */
function stateFromStatus(status: string): ObservedStateName {
  if (/^Up .*\(Paused\)$/.test(status)) return 'paused';
  if (status.startsWith('Up ')) return 'running';
  if (status.startsWith('Exited') || status === 'Dead') return 'exited';
  if (status === 'Created') return 'created';
  if (status.startsWith('Restarting')) return 'restarting';
  return 'unknown';
}
