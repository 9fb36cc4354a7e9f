/**
 * The pieces of health-gated deploys and check_updates that need no container: the spec's
 * health-check bounds, the runtime flags they become, how the runtimes' health words are
 * read, the gate's time budget, and how image references map to registries.
 */
import { describe, expect, it } from 'vitest';
import { allowsPlainHttp, parseImageRef } from '../../agent/handlers/updates.js';
import { gateSeconds, HEALTH_GATE_MAX_SECONDS } from '../../agent/health.js';
import { runArgs } from '../../agent/runtime/cli.js';
import { dockerDialect } from '../../agent/runtime/docker.js';
import { healthStatusOf } from '../../agent/runtime/runtime.js';
import { parseDefinition } from '../../connector/definitions.js';
import { validateServiceSpec } from '../../core/spec.js';
import { component, serviceSpec } from '../support/specs.js';

const WGET = ['/bin/wget', '-q', '-O-', 'http://127.0.0.1:8080/ok'];

describe('health checks in a spec', () => {
  it('accepts a check within bounds and names each field out of them', () => {
    const ok = serviceSpec('web', [
      component('app', { healthCheck: { command: WGET, startPeriodSeconds: 0 } }),
    ]);
    expect(validateServiceSpec(ok)).toEqual([]);

    const bad = serviceSpec('web', [
      component('app', {
        healthCheck: {
          command: [],
          intervalSeconds: 0,
          timeoutSeconds: 301,
          retries: 11,
          startPeriodSeconds: 601,
        },
      }),
    ]);
    expect(validateServiceSpec(bad).map((i) => i.path)).toEqual([
      'components[0].health_check.command',
      'components[0].health_check.interval_seconds',
      'components[0].health_check.timeout_seconds',
      'components[0].health_check.retries',
      'components[0].health_check.start_period_seconds',
    ]);
  });

  it('reads [components.health_check] from a definition file and refuses a bad one naming the file', () => {
    const text = (check: string) =>
      `name = "web"\nnode = "n1"\n\n[[components]]\nname = "app"\nimage = "127.0.0.1:5000/bb:v1"\n\n[components.health_check]\n${check}\n`;
    const definition = parseDefinition(text('command = ["/bin/true"]\ninterval_seconds = 5'), 'web.toml');
    expect(definition.components[0]?.healthCheck).toEqual({
      command: ['/bin/true'],
      intervalSeconds: 5,
      startPeriodSeconds: 0,
    });
    expect(() => parseDefinition(text('command = ["/bin/true"]\nretries = 0'), 'web.toml')).toThrow(
      /web\.toml: .*retries: 0 is out of range/,
    );
  });
});

describe('health flags for the runtime', () => {
  const spec = {
    name: 'web',
    image: 'img:v1',
    healthCheck: { command: ['/bin/sh', '-c', "echo 'hi'"], retries: 2 },
  };

  it('podman gets the exec form (no shell in the image needed), defaults filled in', () => {
    expect(runArgs(spec)).toEqual([
      'run',
      '--detach',
      '--name=web',
      '--health-cmd=["/bin/sh","-c","echo \'hi\'"]',
      '--health-interval=30s',
      '--health-timeout=30s',
      '--health-retries=2',
      '--health-start-period=0s',
      'img:v1',
    ]);
  });

  it('docker gets the argv quoted for its shell form', () => {
    expect(runArgs(spec, dockerDialect)[3]).toBe(`--health-cmd=/bin/sh -c 'echo '\\''hi'\\'''`);
  });

  it('reads the health word of podman and docker listings and inspect', () => {
    expect(healthStatusOf('Up 4 seconds ago (healthy)')).toBe('healthy');
    expect(healthStatusOf('Up 2 seconds (health: starting)')).toBe('starting');
    expect(healthStatusOf('unhealthy')).toBe('unhealthy');
    expect(healthStatusOf('Up 3 minutes')).toBeUndefined();
    expect(healthStatusOf('')).toBeUndefined();
  });

  it('gives a check its start period plus one round more than it may fail, within a cap', () => {
    expect(gateSeconds({ command: WGET, intervalSeconds: 1, timeoutSeconds: 2, retries: 2 })).toBe(9);
    expect(gateSeconds({ command: WGET, intervalSeconds: 300, timeoutSeconds: 300, retries: 10 })).toBe(
      HEALTH_GATE_MAX_SECONDS,
    );
  });
});

describe('image references for check_updates', () => {
  it('finds registry, repository and tag', () => {
    expect(parseImageRef('127.0.0.1:5000/web:v1')).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'web',
      tag: 'v1',
    });
    expect(parseImageRef('nginx')).toEqual({
      registry: 'docker.io',
      repository: 'library/nginx',
      tag: 'latest',
    });
    expect(parseImageRef('ghcr.io/org/app:1.2')).toEqual({
      registry: 'ghcr.io',
      repository: 'org/app',
      tag: '1.2',
    });
    expect(parseImageRef('localhost/bb:v1')).toMatchObject({
      problem: expect.stringContaining('local image'),
    });
    expect(parseImageRef('ghcr.io/org/app@sha256:abc')).toMatchObject({
      problem: expect.stringContaining('digest'),
    });
  });

  it('allows plain HTTP only for loopback and registries marked insecure', () => {
    expect(allowsPlainHttp('127.0.0.1:5000', [])).toBe(true);
    expect(allowsPlainHttp('[::1]:5000', [])).toBe(true);
    expect(allowsPlainHttp('localhost:5000', [])).toBe(true);
    expect(allowsPlainHttp('10.0.0.5:5000', [])).toBe(false);
    expect(allowsPlainHttp('registry.lan:5000', ['registry.lan:5000'])).toBe(true);
    expect(allowsPlainHttp('127.evil.example', [])).toBe(false);
  });
});
