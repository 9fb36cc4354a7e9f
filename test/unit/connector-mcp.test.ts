/**
 * The connector's MCP surface with a real SDK Client (InMemoryTransport): what it publishes,
 * how it refuses bad calls, and how it routes when no agent needs to answer (unreachable
 * nodes are real closed ports, not fakes).
 */
import { ProtocolError } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolListing } from '../../connector/mcp-server.js';
import { tools as contractTools } from '../../tools.generated.js';
import {
  type ConnectorFiles,
  closedPort,
  connectInProcess,
  type InProcessConnector,
  resultText,
  writeConnectorConfig,
  writeDefinition,
} from '../support/connector.js';

let files: ConnectorFiles;
let connector: InProcessConnector;
let ports: number[];

beforeAll(async () => {
  ports = [await closedPort(), await closedPort()];
  files = writeConnectorConfig([
    { name: 'node1', address: `127.0.0.1:${ports[0]}` },
    { name: 'node2', address: `127.0.0.1:${ports[1]}` },
  ]);
  connector = await connectInProcess(files.configFile, { token: 'test-token-not-checked-by-a-closed-port' });
});

afterAll(async () => {
  await connector?.close();
  files?.remove();
});

describe('tools/list', () => {
  it('publishes every tool of the contract, with their schemas and annotations', async () => {
    const { tools } = await connector.client.listTools();
    const expected = contractTools;
    expect(tools.map((t) => t.name)).toEqual(expected.map((t) => t.name));
    for (const t of expected) {
      const listed = tools.find((x) => x.name === t.name);
      // No title (the name reads as one) and no openWorldHint: bytes a model pays for.
      expect(listed?.title).toBeUndefined();
      expect(listed?.description).toBe(t.description);
      // Published cut down (the context budget); calls are still checked against the full schema.
      const published = toolListing(expected).find((x) => x.name === t.name);
      expect(listed?.inputSchema).toEqual(published?.inputSchema);
      expect(listed?.outputSchema).toEqual(published?.outputSchema);
      expect(listed?.annotations?.readOnlyHint ?? false).toBe(t.annotations.readOnlyHint);
      if (!t.annotations.readOnlyHint) {
        expect(listed?.annotations?.destructiveHint ?? true).toBe(t.annotations.destructiveHint);
        expect(listed?.annotations?.idempotentHint ?? false).toBe(t.annotations.idempotentHint);
      }
      expect(listed?.annotations?.openWorldHint).toBeUndefined();
    }
  });

  it('tells a model how the tools fit together', () => {
    const instructions = connector.client.getInstructions() ?? '';
    expect(instructions).toContain(files.servicesDir);
    expect(instructions).toMatch(/requestId/);
    expect(instructions).toMatch(/Destructive.*deploy.*stop_service.*restart_service/);
    expect(instructions).toMatch(/After a timeout: check service_status/);
  });
});

describe('tools/call refusals', () => {
  it('answers an unknown tool with JSON-RPC error -32602', async () => {
    const err = await connector.client
      .callTool({ name: 'deploy_everything', arguments: {} })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe(-32602);
    expect((err as ProtocolError).message).toContain('unknown tool "deploy_everything"');
    expect((err as ProtocolError).message).toContain('list_services');
  });

  it('names each bad field and what was expected', async () => {
    const result = await connector.client.callTool({
      name: 'deploy',
      arguments: { spec: { name: 'web', components: [{ name: 'app', imgae: 'bb:v1' }] }, node: 'Node 1' },
    });
    expect(result.isError).toBe(true);
    const text = resultText(result);
    expect(text).toMatch(/^INVALID_ARGUMENT: the arguments of deploy do not match its input schema/);
    expect(text).toContain('spec.components[0].image: required property missing');
    expect(text).toContain("spec.components[0]: unexpected property 'imgae'");
    expect(text).toContain('node: must match');
  });

  it('names a wrong type and a wrong enum value', async () => {
    const result = await connector.client.callTool({
      name: 'list_services',
      arguments: { desiredState: 'UP' },
    });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toContain('desiredState: expected one of DESIRED_STATE_UNSPECIFIED');
    const typed = await connector.client.callTool({ name: 'service_status', arguments: { service: 7 } });
    expect(resultText(typed)).toContain('service: expected string');
  });

  it('refuses a node that is not configured, listing the nodes', async () => {
    const result = await connector.client.callTool({ name: 'node_status', arguments: { node: 'node9' } });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toMatch(/^NOT_FOUND: unknown node "node9".*node1, node2/);
  });

  it('asks which node when a write names no node, the service has no definition and several nodes exist', async () => {
    const result = await connector.client.callTool({
      name: 'restart_service',
      arguments: { service: 'web' },
    });
    expect(result.isError).toBe(true);
    const text = resultText(result);
    expect(text).toContain('INVALID_ARGUMENT: which node?');
    expect(text).toContain('node1, node2');
    expect(text).toContain(files.servicesDir);
  });

  it('refuses a definition file that names a node the config does not have', async () => {
    const file = writeDefinition(
      files.servicesDir,
      'api',
      'name = "api"\nnode = "node7"\n\n[[components]]\nname = "api"\nimage = "127.0.0.1:5000/bb:v1"\n',
    );
    const result = await connector.client.callTool({ name: 'deploy', arguments: { service: 'api' } });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toContain(
      `${file} puts service "api" on node "node7", which is not configured`,
    );
  });
});

describe('fan-out reads', () => {
  it('reports every node that does not answer in its own entry, with its address', async () => {
    const result = await connector.client.callTool({ name: 'list_services', arguments: {} });
    // No node answered, so the call is an error, but its entries still follow the output schema.
    expect(result.isError).toBe(true);
    const nodes = (
      result.structuredContent as { nodes: { node: string; error?: { code: string; message: string } }[] }
    ).nodes;
    expect(nodes.map((n) => n.node)).toEqual(['node1', 'node2']);
    expect(nodes[1]?.error?.code).toBe('UNAVAILABLE');
    expect(nodes[1]?.error?.message).toMatch(
      new RegExp(`^agent node2 at 127\\.0\\.0\\.1:${ports[1]} is not answering: .*ECONNREFUSED`),
    );
    expect(resultText(result)).toContain(
      `node2: UNAVAILABLE: agent node2 at 127.0.0.1:${ports[1]} is not answering`,
    );
  });
});

describe('tokens', () => {
  it('says how to provide a token when there is none', async () => {
    const bare = await connectInProcess(files.configFile);
    try {
      const result = await bare.client.callTool({ name: 'node_status', arguments: { node: 'node1' } });
      expect(result.isError).toBe(true);
      const text = resultText(result);
      expect(text).toMatch(/^UNAUTHENTICATED: no bearer token for the agents/);
      expect(text).toContain('mcp login');
      expect(text).toContain('$MCP_TOKEN');
    } finally {
      await bare.close();
    }
  });
});

describe('safety switches', () => {
  it('--read-only publishes only read-only tools', async () => {
    const ro = await connectInProcess(files.configFile, { token: 't', switches: { readOnly: true } });
    try {
      const { tools } = await ro.client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(
        [
          'check_updates',
          'list_services',
          'live_check',
          'node_status',
          'pull_file',
          'query_audit',
          'service_logs',
          'service_status',
        ].sort(),
      );
      const err = await ro.client
        .callTool({ name: 'deploy', arguments: { service: 'web' } })
        .catch((e: unknown) => e);
      expect((err as ProtocolError).code).toBe(-32602);
    } finally {
      await ro.close();
    }
  });
});
