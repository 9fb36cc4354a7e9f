/**
 * The health gate of a deploy, and the old container it keeps until the gate is passed.
 *
 * A deploy stops the component's old container and renames it `<container>_previous` (it must
 * be stopped: the new one binds the same host ports), runs the new one, then waits for it to
 * pass the gate: with a health check, the runtime's verdict `healthy` within the check's own
 * budget; without one, still `running` after a short settle. Passed: the old container is
 * removed. Failed: the new one is removed, the old one gets its name back and is started, and
 * the deploy reports the rollback.
 *
 * podman 4.3 schedules health checks only through systemd timers; where systemd does not run
 * (containers, CI) `podman run` logs "unable to get systemd connection to add healthchecks"
 * and nothing ever runs them: the status stays `starting`. So the gate runs the check itself
 * (`podman healthcheck run`) at the check's interval; docker's daemon runs its own.
 *
 * Crash safety: an agent killed mid-gate leaves `<container>_previous` behind. The rule that
 * resolves it, at the next agent start and at the next deploy of the component, is in
 * `resolveLeftover`: a running `<container>` wins and the kept one is removed; otherwise the
 * kept one is the last known good container and takes its name back.
 */
import { previousContainerName } from '../core/naming.js';
import { effectiveHealthCheck } from '../core/spec.js';
import type { Registry } from '../registry/db.js';
import type { ComponentRecord } from '../registry/services.js';
import type {
  ContainerDetails,
  ContainerRuntime,
  ContainerSummary,
  RunHealthCheck,
} from './runtime/index.js';
import type { ServiceLocks } from './service-locks.js';

/** How long a container without a health check must stay running, when there is an old one to go back to. */
export const SETTLE_MS = 1000;
/** The longest a gate waits, whatever the health check's settings. */
export const HEALTH_GATE_MAX_SECONDS = 600;

export type GateVerdict =
  | { readonly passed: true; readonly details: ContainerDetails }
  | { readonly passed: false; readonly reason: string };

/** Seconds the gate gives a health check: its start period plus one more round than it may fail. */
export function gateSeconds(check: RunHealthCheck): number {
  const full = effectiveHealthCheck(check);
  const rounds = full.retries + 1;
  return Math.min(
    HEALTH_GATE_MAX_SECONDS,
    full.startPeriodSeconds + rounds * (full.intervalSeconds + full.timeoutSeconds),
  );
}

/**
 * Waits for the container just started to pass the gate. `settle`: without a health check,
 * wait SETTLE_MS before the verdict (only worth it when there is an old container to go back to).
 */
export async function healthGate(
  runtime: ContainerRuntime,
  container: string,
  check: RunHealthCheck | undefined,
  settle: boolean,
): Promise<GateVerdict> {
  if (!check) {
    if (settle) await sleep(SETTLE_MS);
    return runningVerdict(await runtime.inspect(container), container);
  }
  const full = effectiveHealthCheck(check);
  const budget = gateSeconds(check);
  const deadline = Date.now() + budget * 1000;
  for (;;) {
    try {
      await runtime.runHealthCheck(container);
    } catch {
      // A container that died while checked: the inspect below says so.
    }
    const details = await runtime.inspect(container);
    const running = runningVerdict(details, container);
    if (!running.passed || !details) return running;
    if (details.health === 'healthy') return { passed: true, details };
    if (details.health === 'unhealthy') {
      return {
        passed: false,
        reason: `${container} is unhealthy: its health check failed ${full.retries} times in a row (\`${runtime.kind} inspect ${container}\` shows the output)`,
      };
    }
    if (Date.now() + full.intervalSeconds * 1000 > deadline) {
      return { passed: false, reason: `${container} was not healthy within ${budget} s` };
    }
    await sleep(full.intervalSeconds * 1000);
  }
}

function runningVerdict(details: ContainerDetails | undefined, container: string): GateVerdict {
  if (!details) return { passed: false, reason: `${container} is gone right after it was started` };
  if (details.state !== 'running') {
    return {
      passed: false,
      reason: `${container} is ${details.state}, not running: its command may have ended`,
    };
  }
  return { passed: true, details };
}

/**
 * Resolves a `<container>_previous` left by an interrupted deploy; returns what now holds the
 * component's container name (undefined: nothing). The rule:
 * - `<container>` exists and runs: the new container survived; the kept one is removed.
 * - otherwise: the kept one was the last container known to work. Whatever holds
 *   `<container>` is removed, the kept one is renamed back and, when the component is desired
 *   running, started.
 */
export async function resolveLeftover(
  runtime: ContainerRuntime,
  component: ComponentRecord,
  listing: ReadonlyMap<string, ContainerSummary>,
): Promise<{ current: ContainerSummary | undefined; action: string | undefined }> {
  const { container } = component;
  const kept = listing.get(previousContainerName(container));
  const current = listing.get(container);
  if (!kept) return { current, action: undefined };
  if (current?.state === 'running') {
    await runtime.remove(kept.name, { force: true });
    return { current, action: `removed ${kept.name}: ${container} runs` };
  }
  if (current) await runtime.remove(container, { force: true });
  await runtime.rename(kept.name, container);
  if (component.desiredState === 'running') await runtime.start(container);
  const restored = await runtime.inspect(container);
  return { current: restored, action: `restored ${container} from ${kept.name} (${kept.image})` };
}

/** At agent start: resolves every leftover kept container of a registry component, under its service's lock. */
export async function resolveLeftoversAtStart(deps: {
  registry: Registry;
  runtime: ContainerRuntime;
  locks: ServiceLocks;
  log: { warn(message: string, fields?: Record<string, unknown>): void };
}): Promise<void> {
  const { registry, runtime, locks, log } = deps;
  const names = new Set((await runtime.list()).map((c) => c.name));
  for (const service of registry.services.list()) {
    const leftovers = service.components.filter((c) => names.has(previousContainerName(c.container)));
    if (leftovers.length === 0) continue;
    await locks.withLocks([service.name], async () => {
      const listing = new Map((await runtime.list()).map((c) => [c.name, c]));
      for (const component of leftovers) {
        try {
          const { action } = await resolveLeftover(runtime, component, listing);
          if (!action) continue;
          log.warn('resolved a container kept by an interrupted deploy', { service: service.name, action });
          registry.events.record({
            service: service.name,
            component: component.name,
            kind: 'deploy_interrupted',
            message: action,
          });
        } catch (err) {
          log.warn('could not resolve a container kept by an interrupted deploy', {
            service: service.name,
            component: component.name,
            error: String(err),
          });
        }
      }
    });
  }
}

/** Container name → health word, from one listing (live_check shows it per component). */
export function healthByContainer(containers: readonly ContainerSummary[]): Map<string, string> {
  return new Map(containers.flatMap((c) => (c.health ? [[c.name, c.health] as const] : [])));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
