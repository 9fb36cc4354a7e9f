import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toEvent } from '../../agent/handlers/convert.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { DeployResult, ObservedState } from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import { TRANSITION_EVENT_KIND } from '../../registry/events.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';

let temp: TempRegistry;
let registry: Registry;

beforeEach(() => {
  temp = tempRegistry();
  registry = temp.registry;
});

afterEach(() => temp.cleanup());

const minute = 60_000;
const t0 = new Date('2026-03-01T12:00:00.000Z');
const at = (minutes: number) => new Date(t0.getTime() + minutes * minute);

function transition(
  component: string,
  minutes: number,
  from: 'running' | 'exited',
  to: 'running' | 'exited',
) {
  return registry.events.record({
    service: 'shop',
    component,
    kind: TRANSITION_EVENT_KIND,
    previousState: from,
    observedState: to,
    message: `${from} -> ${to}`,
    time: at(minutes),
  });
}

describe('events', () => {
  it('records an event and reads it back, newest first', () => {
    const first = transition('web', 0, 'running', 'exited');
    const second = transition('web', 1, 'exited', 'running');
    expect(second.id).toBeGreaterThan(first.id);
    const events = registry.events.query({ service: 'shop' });
    expect(events.map((e) => e.id)).toEqual([second.id, first.id]);
    expect(events[1]).toEqual(first);
    expect(events[1]?.time.toISOString()).toBe('2026-03-01T12:00:00.000Z');
    expect(toEvent(events[0]!)).toMatchObject({
      previousState: ObservedState.OBSERVED_STATE_EXITED,
      observedState: ObservedState.OBSERVED_STATE_RUNNING,
    });
  });

  it('stores times as RFC 3339 UTC with milliseconds', () => {
    registry.events.record({
      service: 'shop',
      kind: 'deployed',
      time: new Date('2026-03-01T13:00:00.5+01:00'),
    });
    expect(registry.db.prepare('SELECT time FROM events').pluck().get()).toBe('2026-03-01T12:00:00.500Z');
  });

  it('filters by service, component and time range, with a limit', () => {
    for (let i = 0; i < 10; i++) transition(i % 2 === 0 ? 'web' : 'db', i, 'running', 'exited');
    registry.events.record({ service: 'other', component: 'web', kind: 'deployed', time: at(5) });

    expect(registry.events.query({ service: 'shop', component: 'web' })).toHaveLength(5);
    expect(registry.events.query({ component: 'web' })).toHaveLength(6);
    const window = registry.events.query({ service: 'shop', since: at(3), until: at(7) });
    expect(window.map((e) => e.time.getTime())).toEqual([at(6), at(5), at(4), at(3)].map((d) => d.getTime()));
    const limited = registry.events.query({ service: 'shop', limit: 3 });
    expect(limited.map((e) => e.time.getTime())).toEqual([at(9), at(8), at(7)].map((d) => d.getTime()));
    expect(() => registry.events.query({ limit: 0 })).toThrow(InvalidArgumentError);
  });

  it('counts a component transitions within a window, for flap detection', () => {
    for (let i = 0; i < 6; i++)
      transition('web', i, i % 2 ? 'exited' : 'running', i % 2 ? 'running' : 'exited');
    transition('db', 2, 'running', 'exited');
    registry.events.record({ service: 'shop', component: 'web', kind: 'deployed', time: at(3) });

    expect(registry.events.countTransitions('shop', 'web', at(0), at(6))).toBe(6);
    expect(registry.events.countTransitions('shop', 'web', at(2), at(4))).toBe(2);
    expect(registry.events.countTransitions('shop', 'db', at(0), at(6))).toBe(1);
    expect(registry.events.countTransitions('shop', 'web', at(100))).toBe(0);
  });

  it('prunes events older than the retention and says how many', () => {
    for (let i = 0; i < 5; i++) transition('web', i * 60 * 24, 'running', 'exited'); // one a day
    expect(registry.events.prune(at(2 * 60 * 24))).toBe(2);
    expect(registry.events.query().map((e) => e.time.getTime())).toEqual(
      [4, 3, 2].map((d) => at(d * 60 * 24).getTime()),
    );
    expect(registry.events.prune(at(0))).toBe(0);
  });
});

describe('request results', () => {
  const result: DeployResult = {
    service: 'shop',
    replayed: false,
    components: [
      {
        component: 'web',
        ok: true,
        error: '',
        observedState: 1,
        desiredState: 1,
        version: 'v1',
        container: 'shop-web',
      },
    ],
  };

  it('returns the first result recorded for a request id', () => {
    expect(registry.requestResults.findResult('req-1', 'Deploy')).toBeUndefined();
    registry.requestResults.recordResult('req-1', 'Deploy', DeployResult.toJSON(result));
    // A retry that raced the first call does not replace its result.
    registry.requestResults.recordResult(
      'req-1',
      'Deploy',
      DeployResult.toJSON({ ...result, service: 'other' }),
    );
    const found = registry.requestResults.findResult('req-1', 'Deploy');
    expect(DeployResult.fromJSON(found)).toEqual(result);
  });

  it('survives a restart of the agent', () => {
    registry.requestResults.recordResult('req-2', 'StopService', { service: 'shop' });
    registry.close();
    registry = temp.open();
    expect(registry.requestResults.findResult('req-2', 'StopService')).toEqual({ service: 'shop' });
  });

  it('refuses a request id reused for a different RPC', () => {
    registry.requestResults.recordResult('req-3', 'Deploy', {});
    expect(() => registry.requestResults.findResult('req-3', 'StopService')).toThrow(InvalidArgumentError);
    expect(() => registry.requestResults.recordResult('req-3', 'StopService', {})).toThrow(
      /already used for Deploy/,
    );
  });

  it('treats an empty request id as no idempotency', () => {
    registry.requestResults.recordResult('', 'Deploy', {});
    expect(registry.requestResults.findResult('', 'Deploy')).toBeUndefined();
    expect(registry.db.prepare('SELECT COUNT(*) FROM request_results').pluck().get()).toBe(0);
  });

  it('prunes old results', () => {
    registry.requestResults.recordResult('req-4', 'Deploy', {});
    expect(registry.requestResults.prune(new Date(Date.now() - 60_000))).toBe(0);
    expect(registry.requestResults.prune(new Date(Date.now() + 60_000))).toBe(1);
  });
});
