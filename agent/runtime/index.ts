/** The container runtime layer: pick an implementation by the agent's `container_runtime` setting. */
import type { CliRuntimeOptions } from './cli.js';
import { dockerRuntime } from './docker.js';
import { podmanRuntime } from './podman.js';
import type { ContainerRuntime, RuntimeKind } from './runtime.js';

export { RuntimeCommandError } from './cli.js';
export type {
  ContainerDetails,
  ContainerRuntime,
  ContainerSummary,
  HealthStatus,
  ObservedStateName,
  RunHealthCheck,
  RunSpec,
  RuntimeKind,
  StopOptions,
} from './runtime.js';
export { observedStateName } from './runtime.js';

/**
 * The runtime of that kind, calling the binary at `path` (default: `podman` or `docker`
 * looked up on PATH). Nothing runs until the first call: a missing binary surfaces then as
 * FailedPreconditionError; call `version()` at startup to fail early.
 */
export function createRuntime(
  kind: RuntimeKind,
  path?: string,
  options?: CliRuntimeOptions,
): ContainerRuntime {
  return kind === 'podman' ? podmanRuntime(path, options) : dockerRuntime(path, options);
}
