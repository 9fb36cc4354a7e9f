/**
 * Service and component specs for tests. Each names only what it is about; every other field
 * takes its proto default through the generated `fromPartial`.
 *
 *   serviceSpec('shop', [component('web'), sleeper('worker', bed.imageV1)])
 */
import { ComponentSpec, ServiceSpec } from '../../gen/mcp/v1/mcp.js';

/** A process that ends on SIGTERM, so a stop is quick but still graceful. */
export const SLEEPER = ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];

/** A component called `name`, its image `registry.example:5000/<name>:v1` unless `fields` gives one. */
export function component(name: string, fields: Partial<ComponentSpec> = {}): ComponentSpec {
  return ComponentSpec.fromPartial({ name, image: `registry.example:5000/${name}:v1`, ...fields });
}

/** A component that runs SLEEPER from `image`, usually the test bed's `bed.imageV1`. */
export function sleeper(name: string, image: string, fields: Partial<ComponentSpec> = {}): ComponentSpec {
  return component(name, { image, cmd: SLEEPER, ...fields });
}

/** A service of `components`; `active` left undefined means active. */
export function serviceSpec(name: string, components: ComponentSpec[], active?: boolean): ServiceSpec {
  return ServiceSpec.fromPartial({ name, active, components });
}
