/**
 * The service operations of the agent, put together: Deploy (deploy.ts), Stop/Start/Restart
 * (lifecycle.ts), ListServices/LiveCheck/GetServiceStatus (observe.ts), NodeStatus (node.ts),
 * and here the two that bring services under management without running anything:
 * SyncDesiredState (declared definitions) and AdoptContainers (containers already running).
 *
 * Every write (deploy, stop, start, restart, sync, adopt) holds the per-service lock of the
 * services it changes and honours the request id (service-locks.ts).
 */
import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import { assertValidServiceSpec, checkName, imageVersion } from '../../core/spec.js';
import type { DesiredStateName } from '../../core/states.js';
import {
  type AdoptContainersRequest,
  AdoptContainersResponse,
  type ComponentSpec,
  type SyncDesiredStateRequest,
  SyncDesiredStateResponse,
} from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import { type ServiceRecord, toComponentInfo } from '../../registry/services.js';
import { assertContainerAdmitted, assertServicesAdmitted } from '../admission.js';
import type { ContainerDetails, ContainerSummary } from '../runtime/index.js';
import { splitContainerName } from '../runtime/index.js';
import type { AgentHandlers, CallContext, ServiceScope, UnaryHandler } from '../server.js';
import { ServiceLocks, writeOnce } from '../service-locks.js';
import { deployHandler, type ServiceContext, STOP_TIMEOUT_SECONDS } from './deploy.js';
import type { HandlerDeps } from './deps.js';
import { lifecycleHandlers } from './lifecycle.js';
import { nodeHandlers } from './node.js';
import { observeHandlers } from './observe.js';

export { STOP_TIMEOUT_SECONDS } from './deploy.js';

export type ServiceHandlers = Pick<
  AgentHandlers,
  | 'deploy'
  | 'stopService'
  | 'startService'
  | 'restartService'
  | 'syncDesiredState'
  | 'listServices'
  | 'liveCheck'
  | 'getServiceStatus'
  | 'adoptContainers'
  | 'nodeStatus'
>;

export interface ServiceHandlerOptions {
  /**
   * The locks writes take. Pass the same instance to anything else that writes to services
   * (the monitor) so that it waits for, or skips, services being changed. Default: a new set.
   */
  locks?: ServiceLocks;
  /** Seconds between SIGTERM and SIGKILL when stopping a container. Default STOP_TIMEOUT_SECONDS. */
  stopTimeoutSeconds?: number;
}

export function serviceHandlers(deps: HandlerDeps, options: ServiceHandlerOptions = {}): ServiceHandlers {
  const sc: ServiceContext = {
    deps,
    locks: options.locks ?? new ServiceLocks(),
    stopTimeoutSeconds: options.stopTimeoutSeconds ?? STOP_TIMEOUT_SECONDS,
  };
  return {
    deploy: deployHandler(sc),
    ...lifecycleHandlers(sc),
    syncDesiredState: syncHandler(sc),
    ...observeHandlers(sc),
    adoptContainers: adoptHandler(sc),
    ...nodeHandlers(sc),
  };
}

// ---------------------------------------------------------------- SyncDesiredState

/**
 * Records the definitions (created / updated / unchanged, `active` → desired state), then
 * marks every container that matches no component as a component with desired state
 * `ignore`, under the service its name splits into. Every spec is checked before anything
 * is written, and the whole sync is one transaction: an invalid definition changes nothing.
 * Strays are only recorded under services the caller may sync (its RBAC scope), and only
 * when their names can be service and component names.
 */
function syncHandler(sc: ServiceContext): UnaryHandler<SyncDesiredStateRequest, SyncDesiredStateResponse> {
  const { registry, runtime } = sc.deps;
  return async (req, ctx) => {
    if (req.services.length === 0) {
      throw new InvalidArgumentError('sync needs at least one service definition in services');
    }
    const names = req.services.map((s) => s.name);
    const repeated = names.find((name, i) => names.indexOf(name) !== i);
    if (repeated !== undefined) {
      throw new InvalidArgumentError(
        `service '${repeated}' is defined twice in this sync: give each service once`,
      );
    }
    req.services.forEach((spec, i) => {
      assertValidServiceSpec(spec, `services[${i}] (${spec.name || 'no name'})`);
    });
    assertServicesAdmitted(sc.deps.config, req.services); // agent/admission.ts
    return writeOnce(
      {
        locks: sc.locks,
        requestResults: registry.requestResults,
        services: names,
        rpc: 'SyncDesiredState',
        requestId: req.requestId,
        codec: SyncDesiredStateResponse,
        signal: ctx.signal,
      },
      async () => {
        const containers = await runtime.list();
        return registry.transaction(() => {
          const services = req.services.map((spec) => registry.services.upsert(spec));
          const ignored = recordStrays(registry, containers, ctx);
          return { services, ignored, replayed: false };
        });
      },
    );
  };
}

interface Stray {
  service: string;
  component: string;
  container: ContainerSummary;
}

/** Records unmatched containers as `ignore` components; returns them as `service/component`. */
function recordStrays(
  registry: Registry,
  containers: readonly ContainerSummary[],
  ctx: CallContext,
): string[] {
  const services = registry.services.list();
  const known = new Set(services.flatMap((s) => s.components.map((c) => c.container)));
  const names = services.map((s) => s.name);
  const groups = new Map<string, Stray[]>();
  for (const container of containers) {
    if (known.has(container.name)) continue;
    const stray = strayOf(container, names, ctx.scope);
    if (!stray) continue;
    const group = groups.get(stray.service) ?? [];
    if (group.some((s) => s.component === stray.component)) continue;
    group.push(stray);
    groups.set(stray.service, group);
  }
  const ignored: string[] = [];
  for (const [service, strays] of groups) {
    try {
      // A savepoint per service: one that cannot be recorded (say, a component name already
      // taken by another container) does not undo the others or the definitions.
      registry.transaction(() => {
        const existing = registry.services.get(service);
        const fresh = strays.filter((s) => !existing?.components.some((c) => c.name === s.component));
        if (fresh.length === 0) return;
        const specs = fresh.map((s) => straySpec(s));
        if (existing) {
          for (const spec of specs)
            registry.services.upsertComponent(service, spec, { desiredState: 'ignore' });
        } else {
          // Nothing is asked to run: a service made only of strays is inactive.
          registry.services.upsert(
            { name: service, active: false, components: specs },
            { desiredState: 'ignore' },
          );
        }
        for (const stray of fresh) {
          recordContainer(registry, stray.service, stray.component, stray.container);
          ignored.push(`${stray.service}/${stray.component}`);
        }
      });
    } catch (err) {
      ctx.log.warn('stray containers not recorded', { service, error: String(err) });
    }
  }
  return ignored;
}

function strayOf(
  container: ContainerSummary,
  names: readonly string[],
  scope: ServiceScope,
): Stray | undefined {
  const identity = splitContainerName(container.name, names);
  if (!identity || checkName(identity.service) || checkName(identity.component)) return undefined;
  if (!container.image || !scope.allows(identity.service)) return undefined;
  return { ...identity, container };
}

function straySpec(stray: Stray): ComponentSpec {
  return {
    name: stray.component,
    image: stray.container.image,
    network: '',
    user: '',
    restart: '',
    ports: [],
    volumes: [],
    cmd: [...stray.container.command],
    env: {},
  };
}

/**
 * Records which container a component is and what state it is in. The registry derives a
 * container name from the component's name; a container found in the runtime keeps its own.
 */
function recordContainer(
  registry: Registry,
  service: string,
  component: string,
  container: ContainerSummary,
): void {
  registry.services.setObservedState(service, component, {
    state: container.state,
    container: container.name,
    version: imageVersion(container.image),
    ...(container.startedAt ? { startedAt: container.startedAt } : {}),
  });
}

// ---------------------------------------------------------------- AdoptContainers

/** The runtimes' names for their default network: recorded as '' (the default), as a deploy would. */
const DEFAULT_NETWORKS = new Set(['podman', 'bridge']);

/**
 * A component spec that runs a container like the one inspected. The runtime's normalised
 * values are written back the way a definition would give them: the default network and
 * restart policy as '', `/tcp` (the default) dropped from ports, IPv6 host addresses in brackets.
 */
export function componentSpecFromContainer(component: string, details: ContainerDetails): ComponentSpec {
  return {
    name: component,
    image: details.image,
    network: DEFAULT_NETWORKS.has(details.network) ? '' : details.network,
    user: details.user,
    restart: details.restart === 'no' ? '' : details.restart,
    ports: details.ports.map(definitionPort),
    volumes: [...details.volumes],
    cmd: [...details.cmd],
    env: { ...details.env },
  };
}

function definitionPort(mapping: string): string {
  const match = /^(?:(.*):)?(\d+):(\d+)(?:\/(\w+))?$/.exec(mapping);
  if (!match) return mapping;
  const [, hostIp = '', hostPort, containerPort, protocol = 'tcp'] = match;
  const host = hostIp === '' ? '' : hostIp.includes(':') ? `[${hostIp}]:` : `${hostIp}:`;
  return `${host}${hostPort}:${containerPort}${protocol === 'tcp' ? '' : `/${protocol}`}`;
}

interface Adoption {
  component: string;
  container: ContainerDetails;
  spec: ComponentSpec;
  desired: DesiredStateName;
}

/**
 * Takes containers named `<service>` or `<service>-*` under management. The name is split
 * against the services the registry knows, so adopting `mc` leaves `mc-proxy-web` to a known
 * `mc-proxy`; a container another service already owns is never taken. Components already
 * managed are left as they are; new ones (and `ignore` ones) get the spec read from the
 * runtime and a desired state that follows what runs now. Nothing is restarted.
 */
function adoptHandler(sc: ServiceContext): UnaryHandler<AdoptContainersRequest, AdoptContainersResponse> {
  const { registry, runtime, config } = sc.deps;
  return async (req, ctx) => {
    const nameProblem = checkName(req.service);
    if (nameProblem) throw new InvalidArgumentError(`service: ${nameProblem}`);
    const service = req.service;
    return writeOnce(
      {
        locks: sc.locks,
        requestResults: registry.requestResults,
        services: [service],
        rpc: 'AdoptContainers',
        requestId: req.requestId,
        codec: AdoptContainersResponse,
        signal: ctx.signal,
      },
      async () => {
        const containers = await runtime.list();
        const all = registry.services.list();
        const names = [...new Set([...all.map((s) => s.name), service])];
        const owners = new Map(all.flatMap((s) => s.components.map((c) => [c.container, c] as const)));
        const matches = containers.filter((c) => {
          const owner = owners.get(c.name);
          if (owner) return owner.service === service;
          return splitContainerName(c.name, names)?.service === service;
        });
        if (matches.length === 0) {
          throw new NotFoundError(
            `no container on node ${config.nodeName} is named '${service}' or '${service}-*' (other than ones ` +
              `another service owns): \`${runtime.kind} ps -a\` lists the containers`,
          );
        }

        const adopted: string[] = [];
        const adoptions: Adoption[] = [];
        for (const match of matches) {
          const owner = owners.get(match.name);
          const component = owner?.name ?? splitContainerName(match.name, names)?.component ?? match.name;
          adopted.push(component);
          if (owner && owner.desiredState !== 'ignore') continue;
          const details = await runtime.inspect(match.name);
          if (!details) continue; // removed since the listing
          assertContainerAdmitted(config, service, details); // refused, not recorded: agent/admission.ts
          const spec = componentSpecFromContainer(component, details);
          assertValidServiceSpec({ name: service, components: [spec] }, `container ${match.name}`);
          adoptions.push({
            component,
            container: details,
            spec,
            desired: details.state === 'running' ? 'running' : 'stopped',
          });
        }

        registry.transaction(() => recordAdoptions(registry, service, adoptions));
        const record = registry.services.require(service);
        return {
          service,
          components: record.components.filter((c) => adopted.includes(c.name)).map(toComponentInfo),
          replayed: false,
        };
      },
    );
  };
}

function recordAdoptions(registry: Registry, service: string, adoptions: readonly Adoption[]): void {
  let existing: ServiceRecord | undefined = registry.services.get(service);
  for (const adoption of adoptions) {
    if (!existing) {
      const active = adoptions.some((a) => a.desired === 'running');
      registry.services.upsert(
        { name: service, active, components: [adoption.spec] },
        { desiredState: adoption.desired },
      );
      existing = registry.services.get(service);
    } else {
      registry.services.upsertComponent(service, adoption.spec, { desiredState: adoption.desired });
    }
    recordContainer(registry, service, adoption.component, adoption.container);
    registry.events.record({
      service,
      component: adoption.component,
      kind: 'adopted',
      observedState: adoption.container.state,
      message: `adopted container ${adoption.container.name} (${adoption.spec.image}), desired ${adoption.desired}`,
    });
  }
}
