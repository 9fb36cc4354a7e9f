/**
 * What every service handler needs: its context (dependencies, per-service locks, stop
 * timeout), the lookups that turn a request into recorded services and components or a
 * NOT_FOUND a user can act on, and the per-component container work the handlers share: run
 * a component from its recorded spec, read back what the runtime reports, and say how it went.
 */
import { FailedPreconditionError, McpError, NotFoundError } from '../../core/errors.js';
import { DEFAULT_STOP_TIMEOUT_SECONDS, imageVersion } from '../../core/spec.js';
import { desiredStateToProto, type ObservedStateName, observedStateToProto } from '../../core/states.js';
import type { ComponentResult } from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import type { ComponentRecord, ServiceRecord } from '../../registry/services.js';
import {
  type ContainerDetails,
  type ContainerSummary,
  type RunSpec,
  RuntimeCommandError,
} from '../runtime/index.js';
import type { ServiceLocks } from '../service-locks.js';
import type { HandlerDeps } from './deps.js';

/**
 * Seconds a stop waits after SIGTERM before SIGKILL, for stop, restart and the replacement
 * of a container by a deploy, when a component does not set `stop_timeout_seconds`; 10 s is
 * podman's and docker's own default. A process that ignores SIGTERM (busybox `sleep` or
 * `httpd` as PID 1) always waits it out, unless the component runs with `init`.
 */
export const STOP_TIMEOUT_SECONDS = DEFAULT_STOP_TIMEOUT_SECONDS;

/** What the service handlers share: their dependencies, the per-service locks, the stop timeout. */
export interface ServiceContext {
  readonly deps: HandlerDeps;
  readonly locks: ServiceLocks;
  /** For components that do not set their own. */
  readonly stopTimeoutSeconds: number;
}

/** The seconds a stop of this component waits after SIGTERM. */
export function stopTimeoutFor(sc: ServiceContext, component: ComponentRecord): number {
  return component.stopTimeoutSeconds ?? sc.stopTimeoutSeconds;
}

/** Observed states in which a container holds a process that a stop has to end. */
export const LIVE_STATES: ReadonlySet<ObservedStateName> = new Set([
  'running',
  'paused',
  'restarting',
  'unknown',
]);

export function isLive(state: ObservedStateName): boolean {
  return LIVE_STATES.has(state);
}

export function unknownService(service: string, node: string, hint: string): NotFoundError {
  return new NotFoundError(`service '${service}' is not known on node ${node}: ${hint}`);
}

/** The recorded service, or NOT_FOUND naming the node and what to do. */
export function requireService(sc: ServiceContext, service: string, hint: string): ServiceRecord {
  const found = sc.deps.registry.services.get(service);
  if (!found) throw unknownService(service, sc.deps.config.nodeName, hint);
  return found;
}

/** One component of a recorded service, or NOT_FOUND listing the ones it has. */
export function requireComponent(service: ServiceRecord, component: string): ComponentRecord {
  const found = service.components.find((c) => c.name === component);
  if (found) return found;
  const names = service.components.map((c) => c.name).join(', ') || 'none';
  throw new NotFoundError(`service '${service.name}' has no component '${component}' (it has: ${names})`);
}

/** Components with desired state `ignore` are not managed: no operation acts on them unasked. */
export function requireManaged(component: ComponentRecord, operation: string): ComponentRecord {
  if (component.desiredState !== 'ignore') return component;
  throw new FailedPreconditionError(
    `${component.service}/${component.name} is not managed (desired state ignore), so it cannot be ${operation}: ` +
      'adopt_containers takes its container under management, or deploy it with a full spec',
  );
}

/**
 * Errors that fail one component and let the operation go on with the others: whatever the
 * runtime refused. A runtime that is not there at all (FAILED_PRECONDITION thrown by the
 * runtime layer as such) and anything unexpected fail the whole call.
 */
export function isComponentFailure(err: unknown): err is McpError {
  return err instanceof McpError && !(err instanceof FailedPreconditionError);
}

/** The argv-ready spec of a recorded component. */
export function runSpecOf(component: ComponentRecord): RunSpec {
  return {
    name: component.container,
    image: component.image,
    network: component.network,
    user: component.user,
    restart: component.restart,
    ports: component.ports,
    volumes: component.volumes,
    cmd: component.cmd,
    env: component.env,
    init: component.init,
    ...(component.healthCheck ? { healthCheck: component.healthCheck } : {}),
    ...(component.stopTimeoutSeconds !== undefined
      ? { stopTimeoutSeconds: component.stopTimeoutSeconds }
      : {}),
  };
}

/**
 * Records what the runtime reports for a component (a missing container is `missing`) and
 * returns the record as it is now, with the observed state it had before.
 */
export function recordObservation(
  sc: ServiceContext,
  component: ComponentRecord,
  container: ContainerSummary | ContainerDetails | undefined,
  version?: string,
): { record: ComponentRecord; previous: ObservedStateName | undefined } {
  const { services } = sc.deps.registry;
  const previous = services.setObservedState(component.service, component.name, {
    state: container?.state ?? 'missing',
    ...(container?.startedAt ? { startedAt: container.startedAt } : {}),
    ...(container ? { image: container.image } : {}),
    ...(version !== undefined ? { version } : {}),
  });
  const record = services.getComponent(component.service, component.name) ?? component;
  return { record, previous };
}

/**
 * After a component operation failed: records what the runtime shows now (the old container
 * after a failed pull, nothing after a failed run, ...; a runtime that does not answer counts
 * as no container) and a `<kind>` event carrying the error. Returns the record as it is now.
 */
export async function recordFailure(
  sc: ServiceContext,
  component: ComponentRecord,
  before: ObservedStateName | undefined,
  kind: string,
  err: McpError,
): Promise<ComponentRecord> {
  const now = await sc.deps.runtime.inspect(component.container).catch(() => undefined);
  const { record } = recordObservation(sc, component, now);
  // The whole command and stderr go to the agent's log; the event and the result get the line that matters.
  sc.deps.log.warn(`${kind}`, { service: component.service, component: component.name, error: err.message });
  sc.deps.registry.events.record({
    service: component.service,
    component: component.name,
    kind,
    previousState: before,
    observedState: record.observedState ?? 'missing',
    message: failureLine(err),
  });
  return record;
}

/** What a result says of a component failure: a runtime command's summary, else the message. */
export function failureLine(err: McpError): string {
  return err instanceof RuntimeCommandError ? err.summary : err.message;
}

export function componentResult(component: ComponentRecord, error?: string): ComponentResult {
  return {
    component: component.name,
    ok: error === undefined,
    error: error ?? '',
    observedState: observedStateToProto(component.observedState),
    desiredState: desiredStateToProto(component.desiredState),
    version: component.version,
    container: component.container,
  };
}

/** Stops a component's container; one that is already gone counts as stopped. */
export async function stopContainer(sc: ServiceContext, component: ComponentRecord): Promise<boolean> {
  try {
    await sc.deps.runtime.stop(component.container, { timeoutSeconds: stopTimeoutFor(sc, component) });
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

/** Why a container that should be running is not, in words a user can act on. */
export function notRunningMessage(container: string, state: ObservedStateName, runtime: string): string {
  return state === 'missing'
    ? `container ${container} is gone right after it was started`
    : `container ${container} is ${state}, not running, right after it was started: its command may have ended; see \`${runtime} logs ${container}\``;
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}

/**
 * Records which container a component is and what state it is in. The registry derives a
 * container name from the component's name; a container found in the runtime keeps its own.
 */
export function recordContainer(
  registry: Registry,
  service: string,
  component: string,
  container: ContainerSummary,
): void {
  registry.services.setObservedState(service, component, {
    state: container.state,
    container: container.name,
    version: imageVersion(container.image),
    image: container.image,
    ...(container.startedAt ? { startedAt: container.startedAt } : {}),
  });
}
