/**
 * The registry's records as the contract's messages. The registry speaks its own record types;
 * turning them into proto types for a response is the handlers' job, done here once.
 */
import { desiredStateToProto, observedStateToProto } from '../../core/states.js';
import type { ComponentInfo, Event, ServiceInfo } from '../../gen/mcp/v1/mcp.js';
import type { EventRecord } from '../../registry/events.js';
import type { ComponentRecord, ServiceRecord } from '../../registry/services.js';

export function toComponentInfo(component: ComponentRecord): ComponentInfo {
  return {
    name: component.name,
    container: component.container,
    image: component.image,
    version: component.version,
    desiredState: desiredStateToProto(component.desiredState),
    observedState: observedStateToProto(component.observedState),
    startedAt: component.startedAt,
    updatedAt: component.updatedAt,
    health: '',
  };
}

export function toServiceInfo(service: ServiceRecord): ServiceInfo {
  return { name: service.name, active: service.active, components: service.components.map(toComponentInfo) };
}

/** The info with each component's health from a listing just read (container name → health word). */
export function withHealth(info: ServiceInfo, health: ReadonlyMap<string, string>): ServiceInfo {
  return {
    ...info,
    components: info.components.map((c) => ({ ...c, health: health.get(c.container) ?? '' })),
  };
}

export function toEvent(event: EventRecord): Event {
  return {
    id: event.id,
    service: event.service,
    component: event.component,
    time: event.time,
    kind: event.kind,
    previousState: observedStateToProto(event.previousState),
    observedState: observedStateToProto(event.observedState),
    message: event.message,
  };
}
