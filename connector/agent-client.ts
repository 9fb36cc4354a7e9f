/**
 * The connector's gRPC side: one client per configured node (TLS with the node's CA,
 * keepalive), and the three call shapes of the contract, each typed by the generated codecs
 * of its RPC (tools.generated.ts): unary calls, retried for reads when the agent cannot be
 * reached; server streams (Deploy, PullFile), whose messages are handed on as they arrive;
 * client streams (PushFile), written with backpressure. Every call carries the caller's bearer token and a deadline from the
 * tool table; an MCP cancellation cancels the gRPC call. Errors come back as McpErrors whose
 * messages name the node and its address, and say when a write's outcome is unknown.
 */

import { readFileSync } from 'node:fs';
import {
  type ChannelCredentials,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { FailedPreconditionError, McpError } from '../core/errors.js';
import { fromGrpcError } from '../core/grpc-status.js';
import type { Logger } from '../core/log.js';
import { pause } from '../core/pause.js';
import { CONFIRMATION_METADATA } from '../core/plans.js';
import { McpAgentServiceClient } from '../gen/mcp/v1/mcp.js';
import type { RpcCodecs } from '../tools.generated.js';
import type { NodeConfig } from './config.js';

/**
 * The codecs of any RPC, as file-transfer.ts hands them through to `stream` and
 * `clientStream`; each call below is typed by the codecs it is given.
 */
// biome-ignore lint/suspicious/noExplicitAny: the pass-through type of any RPC's codecs
export type RpcBinding = RpcCodecs<any, any>;

/** What every call to an agent needs besides its request. */
export interface CallSettings {
  /** Bearer token for the `authorization` metadata. Never logged. */
  token: string;
  /** A human's answer to the call's plan, for the agent's audit record (core/plans.ts). */
  confirmation?: string;
  /** Deadline of the whole call, retries included. */
  timeoutSeconds: number;
  /** Reads are retried when the agent is unreachable; writes never are. */
  readOnly: boolean;
  /** Tool name, for messages. */
  tool: string;
  /** For writes: the request id a retry must reuse. */
  requestId?: string;
  /** Aborted when the MCP client cancels the request. */
  signal?: AbortSignal;
}

export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  /** Delay before the first retry; doubled for each further one. */
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 2, baseDelayMs: 250 };

/**
 * Keepalive pings: the agent allows one every 10 s without calls. Channelz (grpc-js's
 * per-call tracing, never exported here) is off: it costs every call of a fan-out. The HTTP/2
 * receive window is four pull chunks instead of 64 KiB, which made a pull wait for a window
 * update every 64 KiB (docs/benchmarks.md, "File transfer").
 */
const CHANNEL_OPTIONS = {
  'grpc.enable_channelz': 0,
  'grpc-node.flow_control_window': 4 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 8 * 1024 * 1024,
};

/** One node's agent. */
export class AgentConnection {
  readonly node: NodeConfig;
  private readonly client: McpAgentServiceClient;
  private readonly retry: RetryPolicy;
  private readonly log: Logger;

  constructor(node: NodeConfig, opts: { retry: RetryPolicy; log: Logger }) {
    this.node = node;
    this.retry = opts.retry;
    this.log = opts.log.child({ node: node.name });
    const channelOptions: Record<string, string | number> = { ...CHANNEL_OPTIONS };
    if (node.serverName !== undefined) {
      channelOptions['grpc.ssl_target_name_override'] = node.serverName;
      channelOptions['grpc.default_authority'] = node.serverName;
    }
    this.client = new McpAgentServiceClient(node.address, tlsCredentials(node), channelOptions);
  }

  /** A unary call; reads are retried on UNAVAILABLE with backoff, within the one deadline. */
  async unary<Req, Res>(rpc: RpcCodecs<Req, Res>, request: Req, settings: CallSettings): Promise<Res> {
    const deadline = Date.now() + settings.timeoutSeconds * 1000;
    const attempts = settings.readOnly ? this.retry.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.unaryOnce(rpc, request, settings, deadline);
      } catch (err) {
        const e = err as McpError;
        const delay = this.retry.baseDelayMs * 2 ** (attempt - 1);
        const retryable = e.code === 'UNAVAILABLE' && attempt < attempts && Date.now() + delay < deadline;
        if (!retryable || settings.signal?.aborted) throw e;
        this.log.debug('agent unavailable, retrying', { tool: settings.tool, attempt, delayMs: delay });
        await pause(delay, settings.signal);
      }
    }
  }

  private unaryOnce<Req, Res>(
    rpc: RpcCodecs<Req, Res>,
    request: Req,
    settings: CallSettings,
    deadline: number,
  ): Promise<Res> {
    const { path, serialize, deserialize, metadata, options } = this.setup(rpc, settings, deadline);
    return new Promise((resolve, reject) => {
      const call: ClientUnaryCall = this.client.makeUnaryRequest(
        path,
        serialize,
        deserialize,
        request,
        metadata,
        options,
        (err: ServiceError | null, response?: Res) => {
          detach();
          if (err) reject(this.toError(err, settings));
          else resolve(response as Res);
        },
      );
      const detach = cancelOnAbort(call, settings.signal);
    });
  }

  /**
   * A server-streaming call: `onMessage` sees every message in order (and may be async:
   * the stream waits for it), and the promise resolves when the stream ends cleanly.
   */
  stream<Req, Res>(
    rpc: RpcCodecs<Req, Res>,
    request: Req,
    settings: CallSettings,
    onMessage: (message: Res) => Promise<void>,
  ): Promise<void> {
    const { path, serialize, deserialize, metadata, options } = this.setup(rpc, settings);
    return new Promise((resolve, reject) => {
      let failed = false;
      const call: ClientReadableStream<Res> = this.client.makeServerStreamRequest(
        path,
        serialize,
        deserialize,
        request,
        metadata,
        options,
      );
      const detach = cancelOnAbort(call, settings.signal);
      // Messages are handled one at a time, in order; the stream is paused while one is.
      let pending: Promise<void> = Promise.resolve();
      call.on('data', (message: Res) => {
        call.pause();
        pending = pending
          .then(() => onMessage(message))
          .then(
            () => {
              call.resume();
            },
            (err) => {
              failed = true;
              call.cancel();
              detach();
              reject(err);
            },
          );
      });
      call.on('error', (err: ServiceError) => {
        detach();
        if (!failed) pending.then(() => reject(this.toError(err, settings)));
      });
      call.on('end', () => {
        detach();
        if (!failed) pending.then(() => resolve());
      });
    });
  }

  /**
   * A client-streaming call: `write` sends the messages (awaiting each `send` respects
   * backpressure); the agent's one response is returned.
   */
  clientStream<Req, Res>(
    rpc: RpcCodecs<Req, Res>,
    settings: CallSettings,
    write: (send: (message: Req) => Promise<void>) => Promise<void>,
  ): Promise<Res> {
    const { path, serialize, deserialize, metadata, options } = this.setup(rpc, settings);
    return new Promise((resolve, reject) => {
      const ended = () =>
        new McpError('ABORTED', `${settings.tool} on ${this.node.name} ended before its content was sent`);
      let settled = false;
      /** A send waiting for the stream to drain; failed when the call ends first. */
      let waiting: ((err?: Error) => void) | undefined;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        detach();
        waiting?.(ended());
        fn();
      };
      const call: ClientWritableStream<Req> = this.client.makeClientStreamRequest(
        path,
        serialize,
        deserialize,
        metadata,
        options,
        (err: ServiceError | null, response?: Res) =>
          settle(() => (err ? reject(this.toError(err, settings)) : resolve(response as Res))),
      );
      const detach = cancelOnAbort(call, settings.signal);
      const send = (message: Req) =>
        new Promise<void>((done, fail) => {
          if (settled) return fail(ended());
          if (call.write(message)) return done();
          waiting = (err) => {
            waiting = undefined;
            if (err) fail(err);
            else done();
          };
          call.once('drain', () => waiting?.());
        });
      write(send).then(
        () => call.end(),
        (err) => {
          call.cancel();
          settle(() => reject(err));
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }

  /**
   * What every call sets up, whatever its shape: the method's path and codecs, the bearer
   * token, and the deadline of the whole call (a unary read's retries share one).
   */
  private setup<Req, Res>(
    rpc: RpcCodecs<Req, Res>,
    settings: CallSettings,
    deadline = Date.now() + settings.timeoutSeconds * 1000,
  ) {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${settings.token}`);
    if (settings.confirmation) metadata.set(CONFIRMATION_METADATA, settings.confirmation);
    return {
      path: rpc.method.path,
      serialize: rpc.method.requestSerialize,
      deserialize: rpc.method.responseDeserialize,
      metadata,
      options: { deadline },
    };
  }

  /**
   * The one place a gRPC failure of this node becomes the error the user reads. A status the
   * agent sent passes through; grpc-js's own (no agent reached, connection lost) carry no
   * response headers, which is how they are told apart.
   */
  private toError(err: ServiceError, settings: CallSettings): McpError {
    const { name, address } = this.node;
    const fromAgent = Object.keys(err.metadata?.toJSON() ?? {}).length > 0;
    if (err.code === status.DEADLINE_EXCEEDED) {
      if (settings.readOnly) {
        return new McpError(
          'DEADLINE_EXCEEDED',
          `agent ${name} at ${address} did not answer ${settings.tool} within ${settings.timeoutSeconds} s: the node may be overloaded; try again, or ask that node alone`,
          { cause: err },
        );
      }
      return new McpError(
        'DEADLINE_EXCEEDED',
        `agent ${name} at ${address} did not answer ${settings.tool} within ${settings.timeoutSeconds} s, so the outcome is unknown: it may have completed or still be running. Check with service_status; retrying with the same requestId "${settings.requestId ?? ''}" is safe: the agent returns the first result instead of acting twice`,
        { cause: err },
      );
    }
    if (err.code === status.CANCELLED && !settings.readOnly) {
      return new McpError(
        'ABORTED',
        `${settings.tool} on ${name} was cancelled; what it had done by then stays done. Check with service_status; retrying with requestId "${settings.requestId ?? ''}" is safe`,
        { cause: err },
      );
    }
    if (err.code === status.UNAVAILABLE && !fromAgent) {
      if (!settings.readOnly && !err.details.startsWith('No connection established')) {
        return new McpError(
          'UNAVAILABLE',
          `the connection to agent ${name} at ${address} was lost during ${settings.tool} (${err.details}), so the outcome is unknown. Check with service_status; retrying with the same requestId "${settings.requestId ?? ''}" is safe`,
          { cause: err },
        );
      }
      return new McpError(
        'UNAVAILABLE',
        `agent ${name} at ${address} is not answering: ${hint(err.details)}`,
        {
          cause: err,
        },
      );
    }
    return fromGrpcError(err);
  }
}

/** The reason grpc-js gives, with what to check for the usual ones. */
function hint(details: string): string {
  const reason = details.replace(/^No connection established\. Last error: /, '').replace(/^Error: /, '');
  if (/certificate|self[- ]signed|SSL|TLS|handshake/i.test(reason)) {
    return `${reason} (check the node's ca_file and server_name in the connector config)`;
  }
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT/.test(reason)) {
    return `${reason} (is mcp-agent running there, and is the address right?)`;
  }
  return reason;
}

function tlsCredentials(node: NodeConfig): ChannelCredentials {
  if (node.caFile === undefined) return credentials.createSsl();
  let ca: Buffer;
  try {
    ca = readFileSync(node.caFile);
  } catch (err) {
    throw new FailedPreconditionError(
      `node ${node.name}: ca_file ${node.caFile} cannot be read: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return credentials.createSsl(ca);
}

/** Something an abort cancels: a gRPC call of any shape. */
interface Cancellable {
  cancel(): void;
}

/**
 * The calls in flight under each MCP request's abort signal. A fan-out puts one call per node
 * under the same signal: one listener per signal cancels them all, where a listener per call
 * would cost an EventTarget entry per node and a leak warning (with its stack) past ten.
 */
const callsUnder = new WeakMap<AbortSignal, Set<Cancellable>>();

function cancelOnAbort(call: Cancellable, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    call.cancel();
    return () => {};
  }
  let calls = callsUnder.get(signal);
  if (!calls) {
    const group = new Set<Cancellable>();
    callsUnder.set(signal, group);
    signal.addEventListener(
      'abort',
      () => {
        for (const c of group) c.cancel();
      },
      { once: true },
    );
    calls = group;
  }
  const group = calls;
  group.add(call);
  return () => {
    group.delete(call);
  };
}

/** One connection per configured node, made when the connector starts. */
export class AgentPool {
  private readonly connections: Map<string, AgentConnection>;

  constructor(nodes: readonly NodeConfig[], opts: { log: Logger; retry?: RetryPolicy }) {
    const retry = opts.retry ?? DEFAULT_RETRY;
    this.connections = new Map(
      nodes.map((node) => [node.name, new AgentConnection(node, { retry, log: opts.log })]),
    );
  }

  /** Node names in config order. */
  get nodes(): string[] {
    return [...this.connections.keys()];
  }

  connection(node: string): AgentConnection {
    const found = this.connections.get(node);
    if (!found) throw new Error(`no connection for node ${node}`); // routing checks names first
    return found;
  }

  close(): void {
    for (const connection of this.connections.values()) connection.close();
  }
}
