/**
 * ServiceLogs: the recent logs of a service's containers, bounded so that an answer never
 * floods a caller's context: `tail` lines per component, `since`, and a byte cap shared
 * evenly by the components read. The runtime streams; nothing past the cap is held.
 */
import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import type { ComponentLogs, ServiceLogsRequest, ServiceLogsResponse } from '../../gen/mcp/v1/mcp.js';
import type { ComponentRecord } from '../../registry/services.js';
import { maskCutSecrets, maskSecrets, secretValuesOf } from '../secrets.js';
import type { UnaryHandler } from '../server.js';
import { isComponentFailure, requireComponent, requireService, type ServiceContext } from './context.js';

export const DEFAULT_LOG_TAIL = 100;
export const MAX_LOG_TAIL = 1000;
export const DEFAULT_LOG_BYTES = 16 * 1024;
export const MAX_LOG_BYTES = 256 * 1024;
/** Components of one service whose logs are read at the same time. */
export const LOG_READS_AT_ONCE = 4;

export function logsHandler(sc: ServiceContext): UnaryHandler<ServiceLogsRequest, ServiceLogsResponse> {
  return async (req, ctx) => {
    const tail = bounded('tail', req.tail, DEFAULT_LOG_TAIL, MAX_LOG_TAIL, 'lines');
    const maxBytes = bounded('maxBytes', req.maxBytes, DEFAULT_LOG_BYTES, MAX_LOG_BYTES, 'bytes');
    const service = requireService(sc, req.service, 'list_services shows the services it has');
    const targets = req.component ? [requireComponent(service, req.component)] : service.components;
    // Each component gets its share of the cap, so one chatty component cannot hide the others.
    const share = Math.max(1, Math.floor(maxBytes / Math.max(targets.length, 1)));
    // Each component's read is bounded by its share: a few run side by side, so a service's
    // answer does not cost one runtime call per component in turn, nor start a runtime process
    // for each of up to 64 components at once on a read anyone with `service.logs` may make.
    const components: ComponentLogs[] = await mapBounded(targets, LOG_READS_AT_ONCE, async (component) => {
      const read = await readLogs(sc, component, { tail, since: req.since, maxBytes: share }, ctx.signal);
      // A value from an env file that the container prints is shown as ***, whoever asks;
      // so is a piece of one where the cap cut a line or where the last line stops.
      const secrets = await secretValuesOf(sc.deps, component);
      const cut = { start: read.truncated, end: read.text !== '' && !read.text.endsWith('\n') };
      return {
        ...read,
        text: maskCutSecrets(maskSecrets(read.text, secrets), secrets, cut),
        error: maskSecrets(read.error, secrets),
      };
    });
    return { service: service.name, components, truncated: components.some((c) => c.truncated) };
  };
}

function bounded(field: string, value: number, fallback: number, max: number, unit: string): number {
  if (value === 0) return fallback;
  if (value > max) {
    throw new InvalidArgumentError(
      `${field} ${value} is over the limit of ${max} ${unit}: give at most ${max}, or 0 for ${fallback}`,
    );
  }
  return value;
}

async function readLogs(
  sc: ServiceContext,
  component: ComponentRecord,
  bounds: { tail: number; since: Date | undefined; maxBytes: number },
  signal: AbortSignal,
): Promise<ComponentLogs> {
  const { name, container } = component;
  const empty = { component: name, container, text: '', truncated: false, bytesDropped: 0 };
  try {
    const read = await sc.deps.runtime.logs(container, {
      tail: bounds.tail,
      maxBytes: bounds.maxBytes,
      signal,
      ...(bounds.since ? { since: bounds.since } : {}),
    });
    return {
      ...empty,
      text: read.text,
      truncated: read.truncated,
      bytesDropped: read.bytesDropped,
      error: read.incomplete ?? '',
    };
  } catch (err) {
    if (err instanceof NotFoundError) {
      return { ...empty, error: `no container ${container}: deploy or start_service runs it` };
    }
    // The runtime refused this component's logs: say so and go on with the others.
    if (isComponentFailure(err)) return { ...empty, error: err.message };
    throw err;
  }
}

/** `task` on each item, at most `limit` at a time; the results in the items' order. */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let at = next++; at < items.length; at = next++) results[at] = await task(items[at] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
