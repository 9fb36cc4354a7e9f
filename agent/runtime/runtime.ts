/**
 * The container runtime as the agent sees it: a handful of operations on named containers,
 * implemented over a runtime's CLI (podman, or the docker CLI). Everything here is shape;
 * the one implementation lives in cli.ts with a dialect per runtime (podman.ts, docker.ts).
 */
import type { ObservedStateName } from '../../core/states.js';

export type { ObservedStateName };

export type RuntimeKind = 'podman' | 'docker';

/**
 * What to run: a container name plus the fields of a `ComponentSpec` (a generated
 * `ComponentSpec` with `name` replaced by the container name fits as is).
 * Empty strings and empty lists mean "the runtime's default".
 */
export interface RunSpec {
  /** Container name, see `containerName()` in core/naming.ts. */
  readonly name: string;
  readonly image: string;
  readonly network?: string;
  readonly user?: string;
  /** `no`, `always`, `on-failure` or `unless-stopped`; empty for `no`. */
  readonly restart?: string;
  /** `[host_ip:]host_port:container_port[/tcp|/udp]` */
  readonly ports?: readonly string[];
  /** `host_path:container_path[:ro|:rw|:z|:Z]` */
  readonly volumes?: readonly string[];
  /** Replaces the image's CMD; empty keeps it. */
  readonly cmd?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Files of KEY=VALUE lines the runtime reads into the container's environment
   * (`--env-file`), before `env`: an inline value wins over a file's. Absolute paths.
   */
  readonly envFiles?: readonly string[];
  /** Runs an init process as PID 1 (`--init`) that forwards signals to the command. */
  readonly init?: boolean;
  /** Recorded on the container (`--stop-timeout`), so a stop by hand waits as long as the agent's. */
  readonly stopTimeoutSeconds?: number;
  /** The runtime's own health check (`--health-cmd`, ...). */
  readonly healthCheck?: RunHealthCheck;
}

/** The contract's HealthCheck; absent numbers take core/spec.ts's defaults (`effectiveHealthCheck`). */
export interface RunHealthCheck {
  /** Argv run inside the container; exit 0 is healthy. */
  readonly command: readonly string[];
  readonly intervalSeconds?: number | undefined;
  readonly timeoutSeconds?: number | undefined;
  readonly retries?: number | undefined;
  readonly startPeriodSeconds?: number | undefined;
}

/** What the runtime says of a container's health check; absent when it has none. */
export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** One container as a full listing reports it. */
export interface ContainerSummary {
  readonly name: string;
  /** Full container id. */
  readonly id: string;
  /** The image reference the container was created from, as given (`127.0.0.1:5000/bb:v1`). */
  readonly image: string;
  readonly state: ObservedStateName;
  /** When the container last started; undefined if it never did. podman's listing gives it in whole seconds. */
  readonly startedAt?: Date;
  /** The container's CMD (without the entrypoint), as given. */
  readonly command: readonly string[];
  /** Its health check's last verdict; undefined when it has no health check. */
  readonly health?: HealthStatus;
}

/**
 * One container in detail, normalised so it can be compared with the `RunSpec` it came from.
 * - `ports`: `host_ip:host_port:container_port/proto`, host_ip omitted when unbound, sorted.
 * - `volumes`: `host:container[:ro][:z|:Z]`; mount options the runtime adds (`rw`, `rbind`,
 *   `rprivate`) are dropped, sorted.
 * - `env`: what the container was given. Dropped: a variable whose value is exactly what the
 *   image sets, and the defaults the runtime injects (`PATH` with the standard default path,
 *   `TERM=xterm`, `container=podman|docker`, `HOSTNAME` equal to the container's hostname,
 *   `HOME` of `/` or `/root`). A user who sets one of those to the same value will not see it.
 * - `network`: the runtime's name for it: the joined network names for bridge networks
 *   (`podman` is podman's default, `bridge` docker's), else `host`, `none`, `container:<id>`.
 * - `restart`: the policy name, `no` when none was set.
 * - `cmd`: the container's CMD (without the entrypoint).
 */
export interface ContainerDetails extends ContainerSummary {
  readonly imageId: string;
  readonly ports: readonly string[];
  readonly volumes: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cmd: readonly string[];
  readonly network: string;
  readonly user: string;
  readonly restart: string;
  /** Whether an init process runs as PID 1. */
  readonly init: boolean;
  /** The stop timeout the container was created with; undefined when the runtime does not say. */
  readonly stopTimeoutSeconds: number | undefined;
  /** What the container may reach of the host beyond its spec, for admission (agent/admission.ts). */
  readonly hostAccess?: HostAccess;
}

/**
 * The host-reaching settings of a container as `inspect` reports them, raw (not normalised),
 * so that admission can judge a container the agent did not create. podman 4.3 reports
 * `IpcMode` as `shareable` even for `--ipc=host`, so host IPC is seen only where the runtime
 * says `host`.
 */
export interface HostAccess {
  readonly privileged: boolean;
  /** As given, e.g. `CAP_NET_ADMIN` (podman) or `NET_ADMIN` (docker). */
  readonly capAdd: readonly string[];
  /** Host paths of the devices passed in. */
  readonly devices: readonly string[];
  readonly pidMode: string;
  readonly ipcMode: string;
  readonly utsMode: string;
  /** `seccomp=unconfined`, `label=disable`, ... */
  readonly securityOpt: readonly string[];
  /** Every mount: `bind` sources are host paths; `volume` sources lie in the runtime's volume store. */
  readonly mounts: readonly HostMount[];
}

export interface HostMount {
  readonly type: string;
  readonly source: string;
  readonly destination: string;
  /** The volume's name, for `volume` mounts. */
  readonly name: string;
  readonly readOnly: boolean;
}

export interface StopOptions {
  /** Seconds to wait after SIGTERM before SIGKILL. A busybox `sleep` as PID 1 ignores SIGTERM and always waits it out. */
  readonly timeoutSeconds: number;
}

/** Bounds of one `logs` read: nothing beyond them is ever held in memory. */
export interface LogsOptions {
  /** Last lines to read (`--tail`). */
  readonly tail: number;
  /** Only lines written at or after this time (`--since`). */
  readonly since?: Date;
  /** Bytes to keep: of the `tail` lines, the newest that fit; the older ones are counted, not held. */
  readonly maxBytes: number;
  readonly signal?: AbortSignal;
}

/** What a bounded `logs` read kept. */
export interface LogsRead {
  /**
   * stdout and stderr interleaved in the order they were written. When the cap cut, it starts
   * at a line's start; a line longer than the cap alone is kept as its last `maxBytes`.
   */
  readonly text: string;
  readonly truncated: boolean;
  /** Bytes of older lines left out by the cap. */
  readonly bytesDropped: number;
  /** Why reading stopped before the log's end, when it did for no bound of the caller's. */
  readonly incomplete?: string;
}

export interface ContainerRuntime {
  readonly kind: RuntimeKind;
  /** The runtime binary as configured (a name looked up on PATH, or a path). */
  readonly path: string;
  /** The runtime's client version, e.g. `4.3.1`. */
  version(): Promise<string>;
  /** Pulls an image. Registry trust (insecure registries, credentials) comes from the runtime's own config. */
  pull(image: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** Creates and starts a detached container; returns its id. Fails with ALREADY_EXISTS if the name is taken. */
  run(spec: RunSpec): Promise<string>;
  start(name: string): Promise<void>;
  /** Renames a container (`rename`); NOT_FOUND when there is none, ALREADY_EXISTS when `to` is taken. */
  rename(from: string, to: string): Promise<void>;
  /**
   * Runs the container's health check once now, where the runtime does not schedule it by
   * itself: podman schedules checks with systemd timers, so without systemd (containers,
   * CI) nothing runs them and the status stays `starting`. docker's daemon schedules its own:
   * a no-op there. The verdict is read back with `inspect`.
   */
  runHealthCheck(name: string): Promise<void>;
  stop(name: string, options: StopOptions): Promise<void>;
  restart(name: string, options: StopOptions): Promise<void>;
  /** `force` removes a running container too, killing it without a grace period. */
  remove(name: string, options?: { force?: boolean }): Promise<void>;
  /** undefined when no container has that name. */
  inspect(name: string): Promise<ContainerDetails | undefined>;
  /** The `repo@sha256:...` digests an image (by id or reference) was pulled or pushed as; [] for none. */
  imageRepoDigests(image: string): Promise<string[]>;
  /** Every container on the node, in one runtime call. */
  list(): Promise<ContainerSummary[]>;
  /** The container's recent logs, the newest `maxBytes` of them. NOT_FOUND when there is no such container. */
  logs(name: string, options: LogsOptions): Promise<LogsRead>;
}

/**
 * Maps a runtime's state word (podman or docker) to an ObservedStateName.
 * podman: `stopped` is exited but not yet cleaned up, `configured`/`initialized` were never started.
 */
export function observedStateName(runtimeState: string): ObservedStateName {
  switch (runtimeState.toLowerCase()) {
    case 'running':
      return 'running';
    case 'exited':
    case 'stopped':
    case 'dead':
      return 'exited';
    case 'created':
    case 'configured':
    case 'initialized':
      return 'created';
    case 'paused':
      return 'paused';
    case 'restarting':
      return 'restarting';
    default:
      // `stopping`, `removing` and anything new: transient or unknown, say so rather than guess.
      return 'unknown';
  }
}

/**
 * The health word of a runtime's status line or inspect field: podman's `ps` Status ends in
 * `(healthy)`, `(unhealthy)` or `(starting)`, docker's in `(health: starting)`; inspect has
 * `healthy`, `unhealthy`, `starting` (and `none` or '' without a check).
 */
export function healthStatusOf(text: string): HealthStatus | undefined {
  const word =
    /\((?:health: )?(starting|healthy|unhealthy)\)\s*$/.exec(text)?.[1] ?? text.trim().toLowerCase();
  return word === 'starting' || word === 'healthy' || word === 'unhealthy' ? word : undefined;
}
