/**
 * AdoptContainers: takes containers already running under management without restarting them.
 * Holds the service's lock and honours the request id.
 */

import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import { splitContainerName } from '../../core/naming.js';
import {
  assertValidServiceSpec,
  checkName,
  checkStopTimeout,
  DEFAULT_STOP_TIMEOUT_SECONDS,
  looksSecret,
} from '../../core/spec.js';
import type { DesiredStateName } from '../../core/states.js';
import {
  type AdoptContainersRequest,
  AdoptContainersResponse,
  type ComponentSpec,
} from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import type { ServiceRecord } from '../../registry/services.js';
import { assertContainerAdmitted } from '../admission.js';
import { planAdopt, planGate } from '../plan.js';
import type { ContainerDetails } from '../runtime/index.js';
import type { UnaryHandler } from '../server.js';
import { recordContainer, type ServiceContext } from './context.js';
import { toComponentInfo } from './convert.js';

/** The runtimes' names for their default network: recorded as '' (the default), as a deploy would. */
const DEFAULT_NETWORKS = new Set(['podman', 'bridge']);

/**
 * A component spec that runs a container like the one inspected. The runtime's normalised
 * values are written back the way a definition would give them: the default network and
 * restart policy as '', `/tcp` (the default) dropped from ports, IPv6 host addresses in brackets.
 * Env comes without the image's own variables (the runtime layer drops them) and without the
 * values of names that look secret: inspect cannot tell an env file's value from an inline one,
 * and the registry keeps no secret. `secretEnvKeys` names what was left out.
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
    env: Object.fromEntries(Object.entries(details.env).filter(([key]) => !looksSecret(key))),
    envFiles: [],
    init: details.init,
    // A container's health check is not read back: a deploy with a spec sets one.
    healthCheck: undefined,
    // The runtimes record 10 s on every container: only another value is worth writing down.
    ...(adoptedStopTimeout(details.stopTimeoutSeconds) !== undefined
      ? { stopTimeoutSeconds: adoptedStopTimeout(details.stopTimeoutSeconds) }
      : {}),
  };
}

/** The container's variables whose values adoption does not record. */
export function secretEnvKeys(details: ContainerDetails): string[] {
  return Object.keys(details.env).filter(looksSecret).sort();
}

function adoptedStopTimeout(seconds: number | undefined): number | undefined {
  if (seconds === undefined || seconds === DEFAULT_STOP_TIMEOUT_SECONDS) return undefined;
  return checkStopTimeout(seconds) === undefined ? seconds : undefined;
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
export function adoptHandler(
  sc: ServiceContext,
): UnaryHandler<AdoptContainersRequest, AdoptContainersResponse> {
  const { registry, runtime, config } = sc.deps;
  return async (req, ctx) => {
    const nameProblem = checkName(req.service);
    if (nameProblem) throw new InvalidArgumentError(`service: ${nameProblem}`);
    const service = req.service;
    return planGate(
      req,
      {
        locks: sc.locks,
        requestResults: registry.requestResults,
        services: [service],
        rpc: 'AdoptContainers',
        requestId: req.requestId,
        codec: AdoptContainersResponse,
        signal: ctx.signal,
      },
      async () => planAdopt(service, registry.services.list(), await runtime.list()),
      (plan) => ({ service, components: [], replayed: false, plan }),
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
  // A service that sync recorded only from strays (all `ignore`) was never declared: its
  // `active` follows what runs now, as for a new one, so an exported definition says so.
  if (existing?.components.every((c) => c.desiredState === 'ignore')) {
    registry.services.setActive(
      service,
      adoptions.some((a) => a.desired === 'running'),
    );
  }
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
    const unrecorded = secretEnvKeys(adoption.container);
    const note =
      unrecorded.length === 0
        ? ''
        : `; env not recorded (names that look secret): ${unrecorded.join(', ')}: give them in an env file (env_files) before a redeploy`;
    registry.events.record({
      service,
      component: adoption.component,
      kind: 'adopted',
      observedState: adoption.container.state,
      message: `adopted container ${adoption.container.name} (${adoption.spec.image}), desired ${adoption.desired}${note}`,
    });
  }
}
