import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ArgumentValidator } from '../../connector/arguments.js';
import { instructions, toolListing } from '../../connector/mcp-server.js';
import { createSchemaValidator } from '../../core/json-schema.js';
import {
  AuditDecision,
  AuditOutcome,
  ComponentResult,
  DeployRequest,
  DeployResult,
  DesiredState,
  GetServiceStatusResponse,
  ListServicesResponse,
  McpAgentServiceService,
  NodeStatusResponse,
  ObservedState,
  QueryAuditResponse,
  StopServiceRequest,
} from '../../gen/mcp/v1/mcp.js';
import { rpcs, tools } from '../../tools.generated.js';

const compiler = createSchemaValidator;

const tool = (name: string) => {
  const t = tools.find((x) => x.name === name);
  if (!t) throw new Error(`no tool ${name}`);
  return t;
};

describe('the generated tool table', () => {
  it('publishes every RPC of the service, each with a permission', () => {
    const served = Object.values(McpAgentServiceService).map((m) => m.path.split('/').pop());
    expect(rpcs.map((r) => r.rpc).sort()).toEqual([...served].sort());
    for (const r of rpcs) expect(r.permission).toMatch(/^[a-z]+\.[a-z_]+$/);
  });

  it.each(tools.map((t) => [t.name, t] as const))(
    '%s has a description, object schemas and annotations',
    (_, t) => {
      expect(t.description.length).toBeGreaterThan(40);
      expect(t.title.length).toBeGreaterThan(0);
      expect(t.inputSchema.type).toBe('object');
      expect(t.outputSchema.type).toBe('object');
      expect(Object.keys(t.annotations).sort()).toEqual([
        'destructiveHint',
        'idempotentHint',
        'openWorldHint',
        'readOnlyHint',
      ]);
      expect(t.annotations.readOnlyHint && t.annotations.destructiveHint).toBe(false);
      const ajv = compiler();
      expect(() => ajv.compile(t.inputSchema)).not.toThrow();
      expect(() => ajv.compile(t.outputSchema)).not.toThrow();
    },
  );

  it('marks reads read-only and lifecycle writes destructive', () => {
    for (const name of [
      'list_services',
      'live_check',
      'service_status',
      'node_status',
      'query_audit',
      'pull_file',
      'check_updates',
    ]) {
      expect(tool(name).annotations.readOnlyHint).toBe(true);
    }
    for (const name of ['deploy', 'stop_service', 'restart_service', 'push_file', 'rollback_service']) {
      expect(tool(name).annotations.destructiveHint).toBe(true);
    }
  });
});

describe('schemas describe the ProtoJSON the generated types produce', () => {
  it('accepts a deploy request built with the generated types', () => {
    const req = DeployRequest.fromPartial({
      spec: {
        name: 'web',
        active: true,
        components: [
          {
            name: 'app',
            image: '127.0.0.1:5000/bb:v1',
            ports: ['127.0.0.1:18080:80'],
            volumes: ['/srv/web/data:/data'],
            cmd: ['/bin/httpd', '-f', '-p', '80'],
            env: { GREETING: 'hello' },
          },
        ],
      },
      requestId: 'r-1',
    });
    const json = { node: 'node1', ...(DeployRequest.toJSON(req) as object) };
    const validate = compiler().compile(tool('deploy').inputSchema);
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
  });

  it('rejects a malformed deploy request and names the field', () => {
    const validate = compiler().compile(tool('deploy').inputSchema);
    const bad = { spec: { name: 'web', components: [{ name: 'app', imgae: 'x' }] } };
    expect(validate(bad)).toBe(false);
    const messages = (validate.errors ?? []).map(
      (e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`,
    );
    expect(messages.join('\n')).toMatch(/\/spec\/components\/0.*image/);
    expect(messages.join('\n')).toMatch(/imgae/);
  });

  it('requires the service of a lifecycle call', () => {
    const validate = compiler().compile(tool('stop_service').inputSchema);
    expect(validate(StopServiceRequest.toJSON(StopServiceRequest.fromPartial({ service: 'web' })))).toBe(
      true,
    );
    expect(validate({ component: 'app' })).toBe(false);
    expect(validate.errors?.[0]?.params).toEqual({ missingProperty: 'service' });
  });

  it('accepts a deploy result wrapped with its node', () => {
    const result = DeployResult.fromPartial({
      service: 'web',
      components: [
        ComponentResult.fromPartial({
          component: 'app',
          ok: true,
          observedState: ObservedState.OBSERVED_STATE_RUNNING,
          desiredState: DesiredState.DESIRED_STATE_RUNNING,
          version: 'v1',
          container: 'web-app',
        }),
      ],
    });
    const validate = compiler().compile(tool('deploy').outputSchema);
    const json = { node: 'node1', ...(DeployResult.toJSON(result) as object) };
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    // Published output schemas stop at the result's own fields (the context budget, below).
    expect(validate({ ...json, components: 'app' })).toBe(false);
  });

  it('accepts fan-out results with a result on one node and an error on another', () => {
    const now = new Date('2026-11-21T10:00:00.000Z');
    const status = GetServiceStatusResponse.fromPartial({
      service: {
        name: 'web',
        active: true,
        components: [
          { name: 'app', startedAt: now, updatedAt: now, desiredState: DesiredState.DESIRED_STATE_RUNNING },
        ],
      },
      events: [{ id: 7, service: 'web', component: 'app', time: now, kind: 'observed_state' }],
    });
    const validate = compiler().compile(tool('service_status').outputSchema);
    const json = {
      nodes: [
        { node: 'node1', result: GetServiceStatusResponse.toJSON(status) },
        {
          node: 'node2',
          error: { code: 'UNAVAILABLE', message: 'agent node2 at 127.0.0.1:1 is not answering' },
        },
      ],
    };
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ nodes: [{ node: 'node1', result: { service: 'web' } }] })).toBe(false);
  });

  it('accepts list, node status and audit responses', () => {
    const cases: Array<[string, unknown]> = [
      [
        'list_services',
        ListServicesResponse.toJSON(
          ListServicesResponse.fromPartial({ services: [{ name: 'web', components: [{ name: 'app' }] }] }),
        ),
      ],
      [
        'node_status',
        NodeStatusResponse.toJSON(
          NodeStatusResponse.fromPartial({
            node: 'node1',
            runtime: 'podman',
            memoryTotalBytes: 25_000_000_000,
            loadAverage: [0.5, 0.4, 0.3],
            disk: { path: '/var/lib/mcp-agent', totalBytes: 1e12, availableBytes: 5e11 },
          }),
        ),
      ],
      [
        'query_audit',
        QueryAuditResponse.toJSON(
          QueryAuditResponse.fromPartial({
            records: [
              {
                seq: 1,
                time: new Date(),
                rpc: 'Deploy',
                roles: ['operator'],
                decision: AuditDecision.AUDIT_DECISION_ALLOW,
                outcome: AuditOutcome.AUDIT_OUTCOME_OK,
                durationMs: 12.5,
              },
            ],
          }),
        ),
      ],
    ];
    for (const [name, result] of cases) {
      const validate = compiler().compile(tool(name).outputSchema);
      expect(
        validate({ nodes: [{ node: 'n1', result }] }),
        `${name}: ${JSON.stringify(validate.errors)}`,
      ).toBe(true);
    }
  });
});

/**
 * What tools/list costs a model's context before its first call: the `tools` array of the
 * JSON-RPC result, serialized as JSON without spaces (what the connector sends), in bytes.
 * Sizes are deterministic, so this is a budget, not a benchmark (docs/benchmarks.md has the
 * measurement beside podman-mcp-server's).
 */
describe('the context budget', () => {
  const bytes = (value: unknown) =>
    Buffer.byteLength(typeof value === 'string' ? value : JSON.stringify(value));

  it('keeps the whole tools/list answer within its ceiling, and --read-only smaller still', () => {
    // 10,240 bytes for the 17 tools (15,002 before output schemas were cut to field names,
    // titles and openWorldHint left the listing, and descriptions published their first
    // paragraph only; 42,656 for 13 tools with full output schemas). A new field or tool that
    // does not fit makes room first.
    const all = bytes(toolListing(tools));
    expect(all).toBeLessThanOrEqual(10_240);
    const readOnly = bytes(toolListing(tools.filter((t) => t.annotations.readOnlyHint)));
    expect(readOnly).toBeLessThan(all / 2);
  });

  it('publishes inputs without what the validator enforces anyway, and still refuses what they leave out', () => {
    const published = JSON.stringify(toolListing(tools).map((t) => t.inputSchema));
    expect(published).not.toContain('"additionalProperties":false');
    expect(published).not.toContain('"pattern"');
    expect(published).not.toContain('_UNSPECIFIED');
    expect(published).not.toContain('4294967295');
    const validator = new ArgumentValidator(tools);
    const check = (tool: string, args: unknown) => {
      const r = validator.check(tool, args);
      return r.ok ? [] : r.problems;
    };
    expect(check('stop_service', { service: 'web', servcie: 'x' }).join('; ')).toContain(
      "arguments: unexpected property 'servcie'",
    );
    expect(check('stop_service', { service: 'web', node: 'Bad Node' }).join('; ')).toContain(
      'node: must match',
    );
    expect(check('list_services', { desiredState: 'DESIRED_STATE_UNSPECIFIED' })).toEqual([]);
    expect(check('service_logs', { service: 'web', tail: 4294967296 }).join('; ')).toContain('tail:');
  });

  it("publishes ServiceSpec once per selection: sync's `services` refers to deploy's `spec`", () => {
    const sync = (selection: typeof tools) =>
      JSON.stringify(toolListing(selection).find((t) => t.name === 'sync_desired_state')?.inputSchema);
    expect(sync(tools)).not.toContain('"components"');
    expect(sync(tools.filter((t) => t.name !== 'deploy'))).toContain('"components"');
    const validator = new ArgumentValidator(tools);
    const typo = validator.check('sync_desired_state', {
      services: [{ name: 'web', components: [], imgae: 'x' }],
    });
    expect(typo.ok ? '' : typo.problems.join('; ')).toContain("services[0]: unexpected property 'imgae'");
  });

  it('publishes an output schema for every tool: the names of its result fields, or an object for a fan-out', () => {
    const listing = toolListing(tools);
    for (const t of tools) {
      const published = listing.find((x) => x.name === t.name)?.outputSchema;
      const fields = Object.keys((t.outputSchema.properties ?? {}) as object);
      expect(published, t.name).toEqual(
        t.fanOut
          ? { type: 'object' }
          : { type: 'object', properties: Object.fromEntries(fields.map((f) => [f, {}])) },
      );
    }
  });

  it('publishes the first paragraph of a description; docs/tools.md keeps the long form', () => {
    const listing = JSON.stringify(toolListing(tools));
    const docs = readFileSync(new URL('../../docs/tools.md', import.meta.url), 'utf8');
    // A field's trailing comment and a tool's further paragraphs are in the docs only.
    for (const longForm of [
      "Lower-case letters, digits, '-'.",
      'The last 5 definitions deployed are kept.',
    ]) {
      expect(docs).toContain(longForm);
      expect(listing).not.toContain(longForm);
    }
    expect(listing).toContain("Redeploy the service's previous definition.");
  });

  it('keeps the server instructions within 1 KB, with paths as long as a typical home', () => {
    const text = instructions({
      servicesDir: '/home/operator/.config/mcp/services',
      localDir: '/home/operator/mcp-files',
      tools,
    });
    expect(bytes(text)).toBeLessThanOrEqual(1024);
  });
});
