import { splitContainerName } from '../../core/naming.js';
import { desiredStateFromProto, observedStateToProto } from '../../core/states.js';
import type {
  GetServiceStatusRequest,
  GetServiceStatusResponse,
  ListServicesRequest,
  ListServicesResponse,
  LiveCheckRequest,
  LiveCheckResponse,
  StateChange,
  UnmanagedContainer,
} from '../../gen/mcp/v1/mcp.js';
import { healthByContainer } from '../health.js';
import { driftOf, type ObservedChange, reconcile } from '../reconcile.js';
import type { ContainerSummary } from '../runtime/index.js';
import type { UnaryHandler } from '../server.js';
import { requireService, type ServiceContext } from './context.js';
import { toEvent, toServiceInfo, withHealth } from './convert.js';

export const DEFAULT_EVENT_LIMIT = 20;

export function observeHandlers(sc: ServiceContext): {
  listServices: UnaryHandler<ListServicesRequest, ListServicesResponse>;
  liveCheck: UnaryHandler<LiveCheckRequest, LiveCheckResponse>;
  getServiceStatus: UnaryHandler<GetServiceStatusRequest, GetServiceStatusResponse>;
} {
  const { registry, runtime } = sc.deps;
  return {
    async listServices(req, ctx) {
      const desiredState = desiredStateFromProto(req.desiredState);
      const services = registry.services.list({ desiredState }).filter((s) => ctx.scope.allows(s.name));
      return { services: services.map(toServiceInfo) };
    },

    async liveCheck(req, ctx) {
      if (req.service) requireService(sc, req.service, 'list_services shows the services it has');
      const containers = await runtime.list();
      const { changes, unmanaged } = reconcile(registry, containers, {
        services: req.service ? [req.service] : undefined,
        skip: (service) => sc.locks.isLocked(service),
      });
      const names = registry.services.names();
      const services = registry.services
        .list()
        .filter((s) => (!req.service || s.name === req.service) && ctx.scope.allows(s.name));
      return {
        services: services.map((s) => withHealth(toServiceInfo(s), healthByContainer(containers))),
        drift: services.flatMap(driftOf),
        changes: changes.filter((c) => ctx.scope.allows(c.service)).map(toStateChange),
        unmanaged: unmanaged
          .filter(
            (c) => ctx.scope.all || ctx.scope.allows(splitContainerName(c.name, names)?.service ?? c.name),
          )
          .map(toUnmanaged),
      };
    },

    async getServiceStatus(req) {
      const service = requireService(sc, req.service, 'list_services shows the services it has');
      const events = registry.events.query({
        service: service.name,
        limit: req.eventLimit || DEFAULT_EVENT_LIMIT,
      });
      return { service: toServiceInfo(service), drift: driftOf(service), events: events.map(toEvent) };
    },
  };
}

function toStateChange(change: ObservedChange): StateChange {
  return {
    service: change.service,
    component: change.component,
    previousState: observedStateToProto(change.previous),
    observedState: observedStateToProto(change.observed),
  };
}

function toUnmanaged(container: ContainerSummary): UnmanagedContainer {
  return {
    name: container.name,
    image: container.image,
    observedState: observedStateToProto(container.state),
  };
}
