/**
 * Container names, the one rule the registry names containers by and the handlers read them
 * back with. A component runs as `<service>-<component>`, except the only component of a
 * service when it is named like the service, which runs as just `<service>`. Service names may
 * contain '-', so splitting a name back consults the services the registry knows before
 * splitting on the first '-'.
 */

export interface ContainerIdentity {
  readonly service: string;
  readonly component: string;
}

/**
 * The container a component runs as: `<service>-<component>`, or just `<service>` when it is
 * the service's only component (`componentCount` 1) and is named like it.
 */
export function containerName(service: string, component: string, componentCount: number): string {
  return componentCount === 1 && component === service ? service : `${service}-${component}`;
}

/**
 * The service and component a container name belongs to. The longest known service that
 * equals the name or prefixes it with '-' wins (`mc-proxy-web` with `mc-proxy` known is
 * {mc-proxy, web}, not {mc, proxy-web}); otherwise the name splits on its first '-'; a name
 * without '-' is a service with one component of the same name. undefined for a name that
 * cannot be one of ours (empty, or an empty part around the '-').
 */
export function splitContainerName(
  name: string,
  knownServices: readonly string[],
): ContainerIdentity | undefined {
  let best: string | undefined;
  for (const service of knownServices) {
    if (service === '' || (best !== undefined && service.length <= best.length)) continue;
    if (name === service || (name.startsWith(`${service}-`) && name.length > service.length + 1))
      best = service;
  }
  if (best !== undefined) {
    return { service: best, component: name === best ? best : name.slice(best.length + 1) };
  }
  const dash = name.indexOf('-');
  if (dash < 0) return name === '' ? undefined : { service: name, component: name };
  const service = name.slice(0, dash);
  const component = name.slice(dash + 1);
  return service && component ? { service, component } : undefined;
}

/**
 * The name a deploy keeps a component's old container under until the new one has passed its
 * health gate (agent/health.ts). '_' is in no service or component name, so this is never a
 * component's own container, and sync never takes it for a stray.
 */
export function previousContainerName(container: string): string {
  return `${container}_previous`;
}
