/**
 * Plans and their digests (agent/plan.ts), and the connector's decision to ask a human
 * (connector/confirm.ts): pure functions over registry records and a runtime listing.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  type ObservedContainer,
  planDeploy,
  planLifecycle,
  planPush,
} from '../../agent/plan.js';
import { confirmPlan, DEFAULT_CONFIRM_SETTINGS, needsQuestion } from '../../connector/confirm.js';
import type { RoutedCall } from '../../connector/routing.js';
import type { ServiceSpec } from '../../gen/mcp/v1/mcp.js';
import type { ComponentRecord, ServiceRecord } from '../../registry/services.js';

const t0 = new Date('2026-01-01T00:00:00Z');

function component(overrides: Partial<ComponentRecord> = {}): ComponentRecord {
  return {
    service: 'web',
    name: 'web',
    image: 'bb:v1',
    network: '',
    user: '',
    restart: '',
    ports: ['127.0.0.1:8080:80'],
    volumes: [],
    cmd: [],
    env: { TOKEN: 'secret-value', MODE: 'a' },
    envFiles: [],
    healthCheck: undefined,
    init: true,
    stopTimeoutSeconds: undefined,
    version: 'v1',
    observedImage: 'localhost/bb:v1',
    desiredState: 'running',
    observedState: 'running',
    container: 'web',
    startedAt: t0,
    createdAt: t0,
    updatedAt: t0,
    ...overrides,
  };
}

function service(components: ComponentRecord[] = [component()]): ServiceRecord {
  return { name: 'web', active: true, createdAt: t0, updatedAt: t0, components };
}

const running: ObservedContainer = {
  name: 'web',
  id: 'a'.repeat(64),
  image: 'localhost/bb:v1',
  state: 'running',
};

function spec(
  image: string,
  env: Record<string, string> = { TOKEN: 'other-secret', EXTRA: '1' },
): ServiceSpec {
  return {
    name: 'web',
    components: [
      {
        name: 'web',
        image,
        network: '',
        user: '',
        restart: '',
        ports: ['127.0.0.1:9090:80'],
        volumes: [],
        cmd: [],
        env,
        envFiles: [],
        healthCheck: undefined,
        init: true,
      },
    ],
  };
}

describe('a deploy plan', () => {
  it('names the container replaced, the images, and the ports and env keys changed, never env values', () => {
    const plan = planDeploy({ service: 'web', spec: spec('bb:v2'), component: '' }, service(), [running]);
    expect(plan.changes).toEqual([
      expect.objectContaining({
        component: 'web',
        action: 'replace',
        container: 'web',
        imageBefore: 'localhost/bb:v1',
        imageAfter: 'bb:v2',
        running: true,
        ports: ['+127.0.0.1:9090:80', '-127.0.0.1:8080:80'],
        envKeys: ['+EXTRA', '-MODE', '~TOKEN'],
      }),
    ]);
    expect(JSON.stringify(plan)).not.toContain('secret');
    expect(needsQuestion(plan)).toBe(true);
  });

  it('creates a missing container, and a create needs no question', () => {
    const plan = planDeploy({ service: 'web', spec: spec('bb:v2'), component: '' }, undefined, []);
    expect(plan.changes[0]).toMatchObject({ action: 'create', container: 'web', running: false });
    expect(needsQuestion(plan)).toBe(false);
  });

  it('has a digest that changes with the observed state, not only with the words of the plan', () => {
    const input = { service: 'web', spec: spec('bb:v2'), component: '' };
    const first = planDeploy(input, service(), [running]);
    expect(planDeploy(input, service(), [running]).digest).toBe(first.digest);
    // Replaced by someone else: same name, image and state, another container.
    const replaced = planDeploy(input, service(), [{ ...running, id: 'b'.repeat(64) }]);
    expect(replaced.changes).toEqual(first.changes);
    expect(replaced.digest).not.toBe(first.digest);
    expect(planDeploy(input, service([component({ image: 'bb:v0' })]), [running]).digest).not.toBe(
      first.digest,
    );
  });
});

describe('lifecycle plans', () => {
  it('stops a running container and has nothing to do for a stopped one', () => {
    const record = service();
    expect(planLifecycle('stop', record, record.components, [running]).changes[0]?.action).toBe('stop');
    const exited = { ...running, state: 'exited' as const };
    const idle = planLifecycle('stop', record, record.components, [exited]);
    expect(idle.changes[0]?.action).toBe('none');
    expect(needsQuestion(idle)).toBe(false);
  });
});

describe('a push plan', () => {
  it('asks before overwriting a different file, not before writing the same one or a new one', () => {
    const existing = { size: 12, sha256: 'c'.repeat(64) };
    const overwrite = planPush('web', 'app.toml', existing, 'd'.repeat(64));
    expect(overwrite.changes[0]).toMatchObject({
      action: 'overwrite',
      fileSize: 12,
      fileSha256: 'c'.repeat(64),
    });
    expect(needsQuestion(overwrite)).toBe(true);
    expect(needsQuestion(planPush('web', 'app.toml', existing, 'c'.repeat(64)))).toBe(false);
    expect(needsQuestion(planPush('web', 'app.toml', undefined, 'd'.repeat(64)))).toBe(false);
  });
});

describe('canonicalJson', () => {
  it('encodes the same value the same way whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 2 } })).toBe(
      canonicalJson({ a: { c: 2, d: [1, { y: 2, z: 1 }] }, b: 1 }),
    );
  });
});

describe('confirmPlan, the CLI hook', () => {
  const plan = planDeploy({ service: 'web', spec: spec('bb:v2'), component: '' }, service(), [running]);
  const planned: RoutedCall = { answers: [{ node: 'node1', response: { plan } }], notes: [] };

  it('executes exactly the plan the prompt accepted, with the answer for the audit record', async () => {
    const calls: { args: Record<string, unknown>; confirmation: string | undefined }[] = [];
    const done: RoutedCall = { answers: [{ node: 'node1', response: {} }], notes: [] };
    await confirmPlan({
      tool: 'deploy',
      args: { service: 'web', planDigest: 'f'.repeat(64) },
      settings: DEFAULT_CONFIRM_SETTINGS,
      prompt: async (q) => (q.text.includes('replace web') ? 'accept' : 'decline'),
      asker: 'mcp-cli',
      configFile: 'connector.toml',
      execute: async (args, confirmation) => {
        calls.push({ args, confirmation });
        return args.dryRun ? planned : done;
      },
    });
    expect(calls).toEqual([
      { args: { service: 'web', dryRun: true }, confirmation: undefined },
      {
        args: { service: 'web', planDigest: plan.digest },
        confirmation: `accepted plan=${plan.digest} by=mcp-cli`,
      },
    ]);
  });

  it('refuses without a prompt, naming the setting', async () => {
    await expect(
      confirmPlan({
        tool: 'deploy',
        args: { service: 'web' },
        settings: DEFAULT_CONFIRM_SETTINGS,
        prompt: undefined,
        asker: 'mcp-cli',
        configFile: 'connector.toml',
        execute: async () => planned,
      }),
    ).rejects.toThrow('[confirm] when_client_cannot_ask');
  });
});
