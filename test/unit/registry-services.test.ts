import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toServiceInfo } from '../../agent/handlers/convert.js';
import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import {
  desiredStateFromProto,
  desiredStateToProto,
  observedStateFromProto,
  observedStateToProto,
} from '../../core/states.js';
import { DesiredState, ObservedState, type ServiceSpec } from '../../gen/mcp/v1/mcp.js';
import type { Registry } from '../../registry/db.js';
import { toServiceSpec } from '../../registry/services.js';
import { type TempRegistry, tempRegistry } from '../support/registry.js';
import { component, serviceSpec } from '../support/specs.js';

let temp: TempRegistry;
let registry: Registry;

beforeEach(() => {
  temp = tempRegistry();
  registry = temp.registry;
});

afterEach(() => temp.cleanup());

const fullWeb = component('web', {
  network: 'backend',
  user: '1000:1000',
  restart: 'unless-stopped',
  ports: ['127.0.0.1:8080:80', '127.0.0.1:8443:443/tcp'],
  volumes: ['/srv/shop/data:/data:rw', '/srv/shop/conf:/etc/app:ro'],
  cmd: ['/bin/httpd', '-f', '-p', '80', '-h', '/www'],
  env: { LOG_LEVEL: 'debug', API_KEY: 's3cret' },
});

describe('services and components', () => {
  it('records a new service with every field of its spec and reads it back', () => {
    const result = registry.services.upsert(serviceSpec('shop', [fullWeb, component('db')]));
    expect(result).toEqual({ service: 'shop', change: 'created', details: ['web: added', 'db: added'] });

    const shop = registry.services.get('shop');
    expect(shop?.active).toBe(true);
    expect(shop?.components.map((c) => c.name)).toEqual(['web', 'db']);
    const web = shop?.components[0];
    expect(web).toMatchObject({
      service: 'shop',
      image: fullWeb.image,
      network: 'backend',
      user: '1000:1000',
      restart: 'unless-stopped',
      ports: fullWeb.ports,
      volumes: fullWeb.volumes,
      cmd: fullWeb.cmd,
      env: fullWeb.env,
      desiredState: 'running',
      observedState: undefined,
      container: 'shop-web',
      version: '',
    });
    expect(toServiceSpec(shop!)).toEqual({
      name: 'shop',
      active: true,
      components: [fullWeb, component('db')],
    });
  });

  it('records init and the stop timeout, and reports their changes', () => {
    registry.services.upsert(serviceSpec('shop', [component('web', { init: true, stopTimeoutSeconds: 2 })]));
    expect(registry.services.getComponent('shop', 'web')).toMatchObject({
      init: true,
      stopTimeoutSeconds: 2,
    });
    expect(toServiceSpec(registry.services.require('shop')).components[0]).toMatchObject({
      init: true,
      stopTimeoutSeconds: 2,
    });
    const changed = registry.services.upsert(serviceSpec('shop', [component('web')]));
    expect(changed.details).toEqual(['web: init true -> false', 'web: stop_timeout_seconds 2s -> (default)']);
    const web = registry.services.getComponent('shop', 'web');
    expect(web?.init).toBe(false);
    expect(web).not.toHaveProperty('stopTimeoutSeconds');
  });

  it('keeps the order of cmd arguments, ports and volumes', () => {
    const args = ['z', 'a', 'm', '--flag', 'a', '0', '10', '9'];
    registry.services.upsert(
      serviceSpec('app', [component('app', { cmd: args, ports: ['3:3', '1:1', '2:2'] })]),
    );
    const app = registry.services.getComponent('app', 'app');
    expect(app?.cmd).toEqual(args);
    expect(app?.ports).toEqual(['3:3', '1:1', '2:2']);
  });

  it('names a lone component named like its service after the service alone', () => {
    registry.services.upsert(serviceSpec('mc-proxy', [component('mc-proxy')]));
    registry.services.upsert(serviceSpec('shop', [component('shop'), component('worker')]));
    expect(registry.services.getComponent('mc-proxy', 'mc-proxy')?.container).toBe('mc-proxy');
    expect(registry.services.getComponent('shop', 'shop')?.container).toBe('shop-shop');
    expect(registry.services.getComponent('shop', 'worker')?.container).toBe('shop-worker');
  });

  it('refuses a component whose container name another component already uses', () => {
    registry.services.upsert(serviceSpec('a-b', [component('a-b')]));
    expect(() => registry.services.upsert(serviceSpec('a', [component('b'), component('c')]))).toThrow(
      /container 'a-b'.*already a-b\/a-b/,
    );
    expect(registry.services.get('a')).toBeUndefined();
  });

  it('reports an unchanged definition as unchanged and a changed one field by field', () => {
    registry.services.upsert(serviceSpec('shop', [fullWeb, component('db')]));
    expect(registry.services.upsert(serviceSpec('shop', [fullWeb, component('db')]))).toEqual({
      service: 'shop',
      change: 'unchanged',
      details: [],
    });

    const changed = {
      ...fullWeb,
      image: 'registry.example:5000/web:v2',
      cmd: ['/bin/httpd', '-f'],
      env: { LOG_LEVEL: 'info', TZ: 'UTC' },
    };
    const result = registry.services.upsert(serviceSpec('shop', [changed, component('db')], false));
    expect(result.change).toBe('updated');
    expect(result.details).toEqual([
      'active: true -> false',
      'web: image registry.example:5000/web:v1 -> registry.example:5000/web:v2',
      'web: cmd ["/bin/httpd","-f","-p","80","-h","/www"] -> ["/bin/httpd","-f"]',
      'web: env LOG_LEVEL changed, TZ added, API_KEY removed',
      'web: desired running -> stopped',
      'db: desired running -> stopped',
    ]);
    // Env values can be secrets: details never show them.
    expect(result.details.join(' ')).not.toMatch(/s3cret|info/);
    const web = registry.services.getComponent('shop', 'web');
    expect(web?.env).toEqual({ LOG_LEVEL: 'info', TZ: 'UTC' });
    expect(web?.cmd).toEqual(['/bin/httpd', '-f']);
    expect(registry.services.get('shop')?.active).toBe(false);
  });

  it('is additive: components the spec leaves out stay recorded', () => {
    registry.services.upsert(serviceSpec('shop', [component('web'), component('db')]));
    const additive = registry.services.upsert(serviceSpec('shop', [component('web'), component('cache')]));
    expect(additive.details).toEqual(['cache: added']);
    expect(
      registry.services
        .get('shop')
        ?.components.map((c) => c.name)
        .sort(),
    ).toEqual(['cache', 'db', 'web']);
  });

  it('rejects invalid specs before writing anything', () => {
    const bad: ServiceSpec[] = [
      serviceSpec('Shop', [component('web')]),
      serviceSpec('shop', []),
      serviceSpec('shop', [component('web'), component('web')]),
      serviceSpec('shop', [component('web', { image: '' })]),
      serviceSpec('shop', [component('-web')]),
      serviceSpec('x'.repeat(64), [component('web')]),
    ];
    for (const spec of bad) expect(() => registry.services.upsert(spec)).toThrow(InvalidArgumentError);
    expect(registry.services.names()).toEqual([]);
  });

  it('enforces one component per (service, name) in the schema itself', () => {
    registry.services.upsert(serviceSpec('shop', [component('web')]));
    const insert = registry.db.prepare(
      `INSERT INTO components (service, name, position, image, desired_state, container, created_at, updated_at)
       VALUES ('shop', 'web', 1, 'x:v1', 'running', ?, 'now', 'now')`,
    );
    expect(() => insert.run('other-container')).toThrow(
      /UNIQUE constraint failed: components.service, components.name/,
    );
    // And a component cannot exist without its service.
    const orphan = registry.db.prepare(
      `INSERT INTO components (service, name, position, image, desired_state, container, created_at, updated_at)
       VALUES ('ghost', 'web', 0, 'x:v1', 'running', 'ghost-web', 'now', 'now')`,
    );
    expect(() => orphan.run()).toThrow(/FOREIGN KEY constraint failed/);
  });

  it('deleting a service deletes its components and their ports, volumes, cmd and env; its events stay', () => {
    registry.services.upsert(serviceSpec('shop', [fullWeb]));
    registry.services.upsert(serviceSpec('other', [component('other', { cmd: ['x'], env: { A: '1' } })]));
    registry.events.record({ service: 'shop', component: 'web', kind: 'deployed' });
    expect(registry.services.delete('shop')).toBe(true);
    expect(registry.services.delete('shop')).toBe(false);
    expect(registry.services.get('shop')).toBeUndefined();
    expect(registry.events.query({ service: 'shop' }).map((e) => e.kind)).toEqual(['deployed']);
    for (const table of [
      'components',
      'component_ports',
      'component_volumes',
      'component_cmd',
      'component_env',
    ]) {
      const count = registry.db.prepare(`SELECT COUNT(*) FROM ${table} WHERE service = 'shop'`).pluck().get();
      expect(count, table).toBe(0);
    }
    expect(registry.services.getComponent('other', 'other')?.env).toEqual({ A: '1' });
  });

  it('adds and updates a single component', () => {
    registry.services.upsert(serviceSpec('shop', [component('web')], false));
    const added = registry.services.upsertComponent('shop', component('worker', { cmd: ['work'] }));
    expect(added).toEqual({ service: 'shop', change: 'updated', details: ['worker: added'] });
    const worker = registry.services.getComponent('shop', 'worker');
    expect(worker).toMatchObject({ desiredState: 'stopped', container: 'shop-worker', cmd: ['work'] });
    expect(registry.services.get('shop')?.components.map((c) => c.name)).toEqual(['web', 'worker']);

    const updated = registry.services.upsertComponent(
      'shop',
      component('worker', { cmd: ['work', '--fast'] }),
    );
    expect(updated.details).toEqual(['worker: cmd ["work"] -> ["work","--fast"]']);
    expect(
      registry.services.upsertComponent('shop', component('worker', { cmd: ['work', '--fast'] })).change,
    ).toBe('unchanged');

    expect(() => registry.services.upsertComponent('nope', component('x'))).toThrow(NotFoundError);
  });

  it('sets the desired state of a whole service or of one component', () => {
    registry.services.upsert(serviceSpec('shop', [component('web'), component('db')]));
    registry.services.setDesiredState('shop', 'stopped', 'db');
    expect(registry.services.get('shop')?.components.map((c) => c.desiredState)).toEqual([
      'running',
      'stopped',
    ]);
    registry.services.setDesiredState('shop', 'ignore');
    expect(registry.services.get('shop')?.components.map((c) => c.desiredState)).toEqual([
      'ignore',
      'ignore',
    ]);
    registry.services.setActive('shop', false);
    expect(registry.services.get('shop')?.active).toBe(false);

    expect(() => registry.services.setDesiredState('shop', 'running', 'nope')).toThrow(NotFoundError);
    expect(() => registry.services.setDesiredState('nope', 'running')).toThrow(NotFoundError);
    expect(() => registry.services.setActive('nope', true)).toThrow(NotFoundError);
  });

  it('records observed state and returns the state it replaces', () => {
    registry.services.upsert(serviceSpec('shop', [component('web')]));
    const startedAt = new Date('2026-01-02T03:04:05.678Z');
    const first = registry.services.setObservedState('shop', 'web', {
      state: 'running',
      startedAt,
      version: 'v1',
      container: 'shop-web',
    });
    expect(first).toBeUndefined();
    expect(registry.services.setObservedState('shop', 'web', { state: 'exited' })).toBe('running');

    const web = registry.services.getComponent('shop', 'web');
    expect(web).toMatchObject({ observedState: 'exited', version: 'v1', container: 'shop-web' });
    // Fields not reported keep their recorded value.
    expect(web?.startedAt?.toISOString()).toBe(startedAt.toISOString());
    expect(() => registry.services.setObservedState('shop', 'nope', { state: 'running' })).toThrow(
      NotFoundError,
    );
  });

  it('lists services by name, optionally only components with a desired state', () => {
    registry.services.upsert(serviceSpec('zeta', [component('a'), component('b')]));
    registry.services.upsert(serviceSpec('alpha', [component('a')], false));
    registry.services.upsert(serviceSpec('mid', [component('x')]), { desiredState: 'ignore' });
    registry.services.setDesiredState('zeta', 'stopped', 'b');

    expect(registry.services.names()).toEqual(['alpha', 'mid', 'zeta']);
    expect(registry.services.list().map((s) => s.name)).toEqual(['alpha', 'mid', 'zeta']);
    const stopped = registry.services.list({ desiredState: 'stopped' });
    expect(stopped.map((s) => [s.name, s.components.map((c) => c.name)])).toEqual([
      ['alpha', ['a']],
      ['zeta', ['b']],
    ]);
    expect(registry.services.list({ desiredState: 'ignore' }).map((s) => s.name)).toEqual(['mid']);
  });

  it('converts records and states to the generated proto types', () => {
    registry.services.upsert(serviceSpec('shop', [component('web')]));
    registry.services.setObservedState('shop', 'web', { state: 'restarting' });
    const info = toServiceInfo(registry.services.require('shop'));
    expect(info.components[0]).toMatchObject({
      name: 'web',
      container: 'shop-web',
      desiredState: DesiredState.DESIRED_STATE_RUNNING,
      observedState: ObservedState.OBSERVED_STATE_RESTARTING,
    });
    expect(info.components[0]?.updatedAt).toBeInstanceOf(Date);
    expect(() => registry.services.require('nope')).toThrow(NotFoundError);

    expect(desiredStateToProto('ignore')).toBe(DesiredState.DESIRED_STATE_IGNORE);
    expect(desiredStateFromProto(DesiredState.DESIRED_STATE_STOPPED)).toBe('stopped');
    expect(desiredStateFromProto(DesiredState.DESIRED_STATE_UNSPECIFIED)).toBeUndefined();
    expect(() => desiredStateFromProto(DesiredState.UNRECOGNIZED)).toThrow(InvalidArgumentError);
    expect(observedStateToProto(undefined)).toBe(ObservedState.OBSERVED_STATE_UNSPECIFIED);
    expect(observedStateFromProto(ObservedState.OBSERVED_STATE_MISSING)).toBe('missing');
  });
});
