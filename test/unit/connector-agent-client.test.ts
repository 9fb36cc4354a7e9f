/**
 * The connector's gRPC client in the situations a real agent cannot be made to produce on
 * demand: a call that never answers (deadline, cancellation), an agent that refuses with
 * UNAVAILABLE, a certificate for another name. FAKE AGENT: a grpc-js server over real TLS
 * implementing only the methods each test needs; everything else is tested against the
 * real agent in test/e2e.
 */

import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentConnection, type CallSettings } from '../../connector/agent-client.js';
import { createCertificateAuthority, issueCertificate } from '../../connector/certs.js';
import type { NodeConfig } from '../../connector/config.js';
import { McpError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { McpAgentServiceService, StopServiceRequest } from '../../gen/mcp/v1/mcp.js';
import { toolCodecs } from '../../tools.generated.js';

let server: Server;
let port: number;
let dir: string;
let caFile: string;
const received: { method: string; authorization: string }[] = [];
const cancelled: string[] = [];
let listCalls = 0;

type Handler = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void;

function record(method: string, metadata: Metadata): void {
  received.push({ method, authorization: String(metadata.get('authorization')[0] ?? '') });
}

/** Never answers; notes when the client cancels. */
const hang =
  (method: string): Handler =>
  (call) => {
    record(method, call.metadata);
    call.on('cancelled', () => cancelled.push(method));
  };

beforeAll(async () => {
  const ca = await createCertificateAuthority('connector test CA');
  const cert = await issueCertificate(ca, { commonName: 'agent.test', dnsNames: ['agent.test'] });
  dir = mkdtempSync(join(tmpdir(), 'mcp-agent-client-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  server = new Server();
  const implementation: Record<string, Handler> = {
    stopService: hang('stopService'),
    nodeStatus: hang('nodeStatus'),
    listServices: (call, callback) => {
      record('listServices', call.metadata);
      listCalls++;
      callback({
        code: status.UNAVAILABLE,
        details: 'the audit log cannot be written, so the agent refuses the call',
      });
    },
  };
  server.addService(McpAgentServiceService, implementation);
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      ServerCredentials.createSsl(null, [
        { cert_chain: Buffer.from(cert.certPem), private_key: Buffer.from(cert.keyPem) },
      ]),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
});

afterAll(() => {
  server?.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
});

function connection(overrides: Partial<NodeConfig> = {}): AgentConnection {
  return new AgentConnection(
    { name: 'node1', address: `127.0.0.1:${port}`, caFile, serverName: 'agent.test', ...overrides },
    { retry: { retries: 2, baseDelayMs: 20 }, log: silentLogger },
  );
}

const write: CallSettings = {
  token: 'tok-123',
  timeoutSeconds: 0.5,
  readOnly: false,
  tool: 'stop_service',
  requestId: 'req-42',
};

describe('agent client', () => {
  it('sends the bearer token and says a write that passed its deadline has an unknown outcome', async () => {
    const agent = connection();
    try {
      const err = (await agent
        .unary(
          toolCodecs.stop_service,
          StopServiceRequest.fromPartial({ service: 'web', component: '', requestId: 'req-42' }),
          write,
        )
        .catch((e: unknown) => e)) as McpError;
      expect(err).toBeInstanceOf(McpError);
      expect(err.code).toBe('DEADLINE_EXCEEDED');
      expect(err.message).toContain('did not answer stop_service within 0.5 s, so the outcome is unknown');
      expect(err.message).toContain('retrying with the same requestId "req-42" is safe');
      expect(received.find((r) => r.method === 'stopService')?.authorization).toBe('Bearer tok-123');
    } finally {
      agent.close();
    }
  });

  it('cancels the gRPC call when the MCP request is cancelled', async () => {
    const agent = connection();
    const abort = new AbortController();
    try {
      const call = agent.unary(
        toolCodecs.node_status,
        {},
        { ...write, readOnly: true, tool: 'node_status', timeoutSeconds: 30, signal: abort.signal },
      );
      await waitFor(() => received.some((r) => r.method === 'nodeStatus'));
      abort.abort();
      await expect(call).rejects.toMatchObject({ code: 'ABORTED' });
      await waitFor(() => cancelled.includes('nodeStatus'));
    } finally {
      agent.close();
    }
  });

  it('cancels every call of a fan-out with one listener on the request signal', async () => {
    const agent = connection();
    const abort = new AbortController();
    const before = cancelled.length;
    try {
      const settings = {
        ...write,
        readOnly: true,
        tool: 'node_status',
        timeoutSeconds: 30,
        signal: abort.signal,
      };
      const calls = Array.from({ length: 12 }, () => agent.unary(toolCodecs.node_status, {}, settings));
      await waitFor(() => received.filter((r) => r.method === 'nodeStatus').length >= 13);
      // One per call would be twelve, and past ten Node warns of a leak on every fan-out.
      expect(getEventListeners(abort.signal, 'abort')).toHaveLength(1);
      abort.abort();
      for (const call of calls) await expect(call).rejects.toMatchObject({ code: 'ABORTED' });
      await waitFor(() => cancelled.length - before === 12);
    } finally {
      agent.close();
    }
  });

  it("retries a read twice when the agent answers UNAVAILABLE, and passes the agent's message through", async () => {
    const agent = connection();
    try {
      const err = (await agent
        .unary(toolCodecs.list_services, toolCodecs.list_services.request.fromJSON({}), {
          ...write,
          readOnly: true,
          tool: 'list_services',
          timeoutSeconds: 10,
        })
        .catch((e: unknown) => e)) as McpError;
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toBe('the audit log cannot be written, so the agent refuses the call');
      expect(listCalls).toBe(3);
    } finally {
      agent.close();
    }
  });

  it('names the certificate problem when the agent certificate is not for the name expected', async () => {
    const agent = connection({ serverName: undefined });
    try {
      const err = (await agent
        .unary(
          toolCodecs.node_status,
          {},
          { ...write, readOnly: true, tool: 'node_status', timeoutSeconds: 10 },
        )
        .catch((e: unknown) => e)) as McpError;
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toMatch(new RegExp(`^agent node1 at 127\\.0\\.0\\.1:${port} is not answering: `));
      expect(err.message).toContain("check the node's ca_file and server_name");
    } finally {
      agent.close();
    }
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}
