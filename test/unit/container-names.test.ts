import { describe, expect, it } from 'vitest';
import { containerName, splitContainerName } from '../../core/naming.js';

describe('containerName', () => {
  it('joins service and component with a dash', () => {
    expect(containerName('metacrypt', 'web', 2)).toBe('metacrypt-web');
    expect(containerName('a', 'b', 1)).toBe('a-b');
  });

  it('uses just the service name for a single component named like its service', () => {
    expect(containerName('mc-proxy', 'mc-proxy', 1)).toBe('mc-proxy');
  });

  it('joins a component named like its service when it is not the only one', () => {
    expect(containerName('shop', 'shop', 2)).toBe('shop-shop');
  });
});

describe('splitContainerName', () => {
  const known = ['mc', 'mc-proxy', 'metacrypt'];

  it('prefers the longest known service over the first dash', () => {
    expect(splitContainerName('mc-proxy', known)).toEqual({ service: 'mc-proxy', component: 'mc-proxy' });
    expect(splitContainerName('mc-proxy-web', known)).toEqual({ service: 'mc-proxy', component: 'web' });
  });

  it('does not care about the order of the known services', () => {
    expect(splitContainerName('mc-proxy-web', ['mc-proxy', 'mc'])).toEqual({
      service: 'mc-proxy',
      component: 'web',
    });
  });

  it('uses a shorter known service when the longer one does not match', () => {
    expect(splitContainerName('mc-api', known)).toEqual({ service: 'mc', component: 'api' });
  });

  it('does not take a known service that is only a prefix of a word', () => {
    expect(splitContainerName('mcx-web', ['mc'])).toEqual({ service: 'mcx', component: 'web' });
  });

  it('splits an unknown name on its first dash', () => {
    expect(splitContainerName('grafana-db-replica', known)).toEqual({
      service: 'grafana',
      component: 'db-replica',
    });
  });

  it('reads a name without a dash as a single-component service', () => {
    expect(splitContainerName('grafana', [])).toEqual({ service: 'grafana', component: 'grafana' });
  });

  it('rejects names that cannot be ours', () => {
    expect(splitContainerName('', known)).toBeUndefined();
    expect(splitContainerName('-web', [])).toBeUndefined();
    expect(splitContainerName('web-', [])).toBeUndefined();
  });

  it('round-trips containerName for known services', () => {
    for (const [service, component] of [
      ['mc-proxy', 'mc-proxy'],
      ['mc-proxy', 'web'],
      ['mc', 'proxy-web'],
      ['metacrypt', 'metacrypt'],
    ] as const) {
      expect(splitContainerName(containerName(service, component, 1), [service])).toEqual({
        service,
        component,
      });
    }
  });
});
