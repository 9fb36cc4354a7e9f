/**
 * A human's yes before a destructive change, end to end: the built connector over stdio, a
 * real agent and real podman, real SDK clients of both protocol eras (2026-07-28 answers an
 * `input_required` result, 2025-11-25 an `elicitation/create` request). A client that
 * accepts gets the deploy and an audit record of its yes; one that declines changes nothing;
 * a client that cannot ask is refused (or let through with `allow`); a plan that went stale
 * while the human thought is asked again. Run `npm run build` first.
 */
import { execFileSync } from 'node:child_process';
import type { Client, ClientOptions } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signTestToken, startTestAgent, type TestAgent } from '../support/agent.js';
import {
  type ConnectorFiles,
  resultText,
  spawnStdioConnector,
  writeConnectorConfig,
} from '../support/connector.js';
import { removeContainers, requireTestbed, type Testbed, uniqueName } from '../support/testbed.js';

type Era = '2026-07-28' | '2025-11-25';
type Answer = { action: 'accept' | 'decline' | 'cancel'; content?: { confirm: boolean } };

let agent: TestAgent;
let strict: ConnectorFiles;
let lenient: ConnectorFiles;
let bed: Testbed | undefined;
let token: string;
const prefix = uniqueName('confirm');

beforeAll(async () => {
  bed = await requireTestbed();
  agent = await startTestAgent({ node: 'node1' });
  const nodes = [{ name: 'node1', address: agent.address, caPem: agent.caPem }];
  strict = writeConnectorConfig(nodes);
  lenient = writeConnectorConfig(nodes, '[confirm]\nwhen_client_cannot_ask = "allow"\n');
  token = await signTestToken({ subject: 'confirm-admin', roles: ['admin'] });
});

afterAll(async () => {
  await agent?.stop();
  if (bed) await removeContainers(prefix);
  strict?.remove();
  lenient?.remove();
});

function podman(...args: string[]): string {
  return execFileSync(bed?.podman ?? 'podman', args, { encoding: 'utf8' }).trim();
}

/** A stdio client of `era`; with `onQuestion` it declares elicitation and answers with it. */
async function connect(
  era: Era,
  files: ConnectorFiles,
  onQuestion?: (message: string) => Promise<Answer>,
): Promise<{ client: Client; close(): Promise<void> }> {
  const options: ClientOptions = {
    ...(era === '2026-07-28' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {}),
    ...(onQuestion ? { capabilities: { elicitation: { form: {} } } } : {}),
  };
  const session = await spawnStdioConnector(['--config', files.configFile], { MCP_TOKEN: token }, options);
  if (onQuestion) {
    session.client.setRequestHandler('elicitation/create', async (request) =>
      onQuestion((request.params as { message: string }).message),
    );
  }
  return session;
}

const accept: Answer = { action: 'accept', content: { confirm: true } };

function deploy(service: string, image: string, extra: Record<string, unknown> = {}) {
  return {
    name: 'deploy',
    arguments: {
      node: 'node1',
      spec: { name: service, components: [{ name: service, image, init: true }] },
      ...extra,
    },
  };
}

async function auditOf(
  client: Client,
  service: string,
): Promise<{ confirmation?: string; outcome?: string }[]> {
  const result = await client.callTool({
    name: 'query_audit',
    arguments: { node: 'node1', rpc: 'Deploy', service },
  });
  const nodes = (result.structuredContent as { nodes: { result?: { records?: unknown[] } }[] }).nodes;
  return (nodes[0]?.result?.records ?? []) as { confirmation?: string; outcome?: string }[];
}

describe.each(['2026-07-28', '2025-11-25'] as const)('confirmations, %s', (era) => {
  const service = `${prefix}-${era.slice(0, 4)}`;
  const questions: string[] = [];
  let answer: (message: string) => Promise<Answer> = async () => accept;
  let session: { client: Client; close(): Promise<void> };

  beforeAll(async () => {
    session = await connect(era, strict, (message) => {
      questions.push(message);
      return answer(message);
    });
  });

  afterAll(async () => {
    await session?.close();
  });

  it('creates a service without a question: nothing that runs changes', async (ctx) => {
    if (!bed) return ctx.skip();
    const result = await session.client.callTool(deploy(service, bed.imageV1), { timeout: 300_000 });
    expect(result.isError, resultText(result)).toBeFalsy();
    expect(questions).toEqual([]);
  });

  it('answers dryRun with the plan and changes nothing', async (ctx) => {
    if (!bed) return ctx.skip();
    const before = podman('inspect', '--format', '{{.Id}}', service);
    const result = await session.client.callTool(deploy(service, bed.imageV2, { dryRun: true }));
    expect(result.isError, resultText(result)).toBeFalsy();
    const plan = (
      result.structuredContent as { plan: { digest: string; changes: Record<string, unknown>[] } }
    ).plan;
    expect(plan.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(plan.changes[0]).toMatchObject({ action: 'replace', container: service, running: true });
    expect(resultText(result)).toContain(`replace ${service}`);
    expect(podman('inspect', '--format', '{{.Id}}', service)).toBe(before);
    expect(questions).toEqual([]);
  });

  it('asks before replacing a running container, and a yes deploys exactly that plan', async (ctx) => {
    if (!bed) return ctx.skip();
    answer = async () => accept;
    const result = await session.client.callTool(deploy(service, bed.imageV2), { timeout: 300_000 });
    expect(result.isError, resultText(result)).toBeFalsy();
    expect(questions).toHaveLength(1);
    expect(questions[0]).toContain(`replace ${service}`);
    expect(podman('inspect', '--format', '{{.ImageName}}', service)).toContain('bb:v2');
    const [latest] = await auditOf(session.client, service);
    expect(latest?.confirmation).toMatch(/^accepted plan=[0-9a-f]{64} by=mcp-connector$/);
    expect(latest?.outcome).toBe('AUDIT_OUTCOME_OK');
  });

  it('changes nothing when the human declines, says so, and audits the answer', async (ctx) => {
    if (!bed) return ctx.skip();
    questions.length = 0;
    answer = async () => ({ action: 'decline' });
    const before = podman('inspect', '--format', '{{.Id}}', service);
    const result = await session.client.callTool(deploy(service, bed.imageV1), { timeout: 300_000 });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toMatch(/^ABORTED: the human declined the plan/);
    expect(questions).toHaveLength(1);
    expect(podman('inspect', '--format', '{{.Id}}', service)).toBe(before);
    const [latest] = await auditOf(session.client, service);
    expect(latest?.confirmation).toMatch(/^declined plan=[0-9a-f]{64} by=mcp-connector$/);
  });

  it('ignores a planDigest the model sends: the human is still asked', async (ctx) => {
    if (!bed) return ctx.skip();
    questions.length = 0;
    answer = async () => ({ action: 'cancel' });
    const result = await session.client.callTool(
      deploy(service, bed.imageV1, { planDigest: 'f'.repeat(64) }),
      { timeout: 300_000 },
    );
    expect(result.isError).toBe(true);
    expect(resultText(result)).toContain('cancelled');
    expect(questions).toHaveLength(1);
  });

  it('asks again when the node changed between the question and the answer', async (ctx) => {
    if (!bed) return ctx.skip();
    const podmanBin = bed.podman;
    const image = bed.imageV1;
    questions.length = 0;
    answer = async () => {
      if (questions.length === 1) {
        // Someone else replaces the container while the human reads the plan.
        execFileSync(podmanBin, ['rm', '-f', '-t', '0', service]);
        execFileSync(podmanBin, ['run', '-d', '--init', '--name', service, image]);
      }
      return accept;
    };
    const result = await session.client.callTool(deploy(service, bed.imageV1), { timeout: 300_000 });
    expect(result.isError, resultText(result)).toBeFalsy();
    expect(questions).toHaveLength(2);
    expect(questions[1]).toContain('The node changed since the last question');
  });
});

describe('a client that cannot ask', () => {
  const service = `${prefix}-noask`;

  it('is refused, naming the setting; with `allow` the call proceeds', async (ctx) => {
    if (!bed) return ctx.skip();
    const refused = await connect('2025-11-25', strict);
    const allowed = await connect('2026-07-28', lenient);
    try {
      const created = await refused.client.callTool(deploy(service, bed.imageV1), { timeout: 300_000 });
      expect(created.isError, resultText(created)).toBeFalsy(); // a create asks nothing
      const before = podman('inspect', '--format', '{{.Id}}', service);
      const result = await refused.client.callTool(deploy(service, bed.imageV2), { timeout: 300_000 });
      expect(result.isError).toBe(true);
      expect(resultText(result)).toContain('[confirm] when_client_cannot_ask = "allow"');
      expect(podman('inspect', '--format', '{{.Id}}', service)).toBe(before);

      const through = await allowed.client.callTool(deploy(service, bed.imageV2), { timeout: 300_000 });
      expect(through.isError, resultText(through)).toBeFalsy();
      expect(podman('inspect', '--format', '{{.ImageName}}', service)).toContain('bb:v2');
    } finally {
      await refused.close();
      await allowed.close();
    }
  });
});
