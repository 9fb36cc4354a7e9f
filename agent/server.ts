/**
 * The agent's gRPC server. Every RPC of the contract is bound through `guard`, which runs,
 * in this order and for every call: authenticate (bearer token) → authorize (the RPC's
 * permission from the contract, scoped to the target service) → audit the attempt durably
 * → handler → audit the outcome. The service implementation is built from the generated
 * RPC table, so a handler cannot be registered any other way, and an RPC without a handler
 * stops the server from starting.
 */

import { createHash } from 'node:crypto';
import {
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type Metadata,
  Server,
  ServerCredentials,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Authenticator } from '../core/auth/authenticator.js';
import type { Caller } from '../core/auth/caller.js';
import { InvalidArgumentError, toMcpError, UnauthenticatedError, UnavailableError } from '../core/errors.js';
import { withFileChunkCodecs } from '../core/file-chunks.js';
import { toStatusObject } from '../core/grpc-status.js';
import type { Logger } from '../core/log.js';
import { CONFIRMATION_METADATA, isConfirmationText } from '../core/plans.js';
import type * as pb from '../gen/mcp/v1/mcp.js';
import { type McpAgentServiceServer, McpAgentServiceService } from '../gen/mcp/v1/mcp.js';
import type { AuditCall, AuditLog, AuditOutcomeInput } from '../registry/audit.js';
import { type RpcEntry, type RpcName, rpcCodecs, rpcs } from '../tools.generated.js';

/** What a handler knows about the call it serves. */
export interface CallContext {
  readonly rpc: RpcName;
  readonly caller: Caller;
  /** Roles in effect: the token's and the configured bindings'. */
  readonly roles: string[];
  /** Which services this caller may see with this RPC's permission (list RPCs filter by it). */
  readonly scope: ServiceScope;
  /**
   * Throws PermissionDeniedError unless the caller has `permission` on every one of `services`:
   * for a handler that finds, once it looks, that a call reaches further than its RPC's
   * permission covers (pull_file of a secret).
   */
  authorize(permission: string, services: string[]): void;
  /** Aborted when the client cancels or its deadline passes. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

export interface ServiceScope {
  readonly all: boolean;
  allows(service: string): boolean;
}

export interface Authorizer {
  rolesOf(caller: Caller): string[];
  /** Throws PermissionDeniedError when the caller may not use `permission` on every one of `services`. */
  authorize(caller: Caller, permission: string, services: string[]): void;
  scopeOf(caller: Caller, permission: string): ServiceScope;
}

/**
 * The audit log as the server needs it (registry/audit.ts): `recordCall` resolves once the row
 * is durable (group commit) and rejects when it cannot be; `recordOutcome` is written lazily.
 */
export type AuditTrail = Pick<AuditLog, 'recordCall' | 'recordOutcome'>;

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;
export type ServerStreamHandler<Req, Res> = (
  req: Req,
  ctx: CallContext,
  send: (msg: Res) => Promise<void>,
) => Promise<void>;
/** Gets the first message (already used for authorization) and an iterator over the rest. */
export type ClientStreamHandler<Req, Res> = (
  first: Req,
  rest: AsyncIterable<Req>,
  ctx: CallContext,
) => Promise<Res>;

type HandlerFor<T> =
  T extends handleUnaryCall<infer Req, infer Res>
    ? UnaryHandler<Req, Res>
    : T extends handleServerStreamingCall<infer Req, infer Res>
      ? ServerStreamHandler<Req, Res>
      : T extends handleClientStreamingCall<infer Req, infer Res>
        ? ClientStreamHandler<Req, Res>
        : never;

/** One handler per RPC of the contract; the compiler checks that none is missing. */
export type AgentHandlers = {
  [K in keyof McpAgentServiceServer as string extends K ? never : K]: HandlerFor<McpAgentServiceServer[K]>;
};

export interface AgentServerOptions {
  node: string;
  authenticator: Authenticator;
  authorizer: Authorizer;
  audit: AuditTrail;
  handlers: AgentHandlers;
  log: Logger;
}

interface Target {
  services: string[];
  service: string;
  component: string;
  requestId: string;
}

/**
 * What a request targets, for authorization and the audit record. Written out per RPC on
 * purpose: a new RPC fails to compile here until someone decides what it targets.
 */
const NO_TARGET: Target = { services: [], service: '', component: '', requestId: '' };

function targetOf(rpc: RpcName, req: unknown): Target {
  const none = NO_TARGET;
  switch (rpc) {
    case 'Deploy': {
      const r = req as pb.DeployRequest;
      const service = r.spec?.name || r.service;
      return { services: [service], service, component: r.component, requestId: r.requestId };
    }
    case 'StopService':
    case 'StartService':
    case 'RestartService': {
      const r = req as pb.StopServiceRequest;
      return { services: [r.service], service: r.service, component: r.component, requestId: r.requestId };
    }
    case 'SyncDesiredState': {
      const r = req as pb.SyncDesiredStateRequest;
      const services = r.services.map((s) => s.name);
      return { services, service: services.join(','), component: '', requestId: r.requestId };
    }
    case 'AdoptContainers': {
      const r = req as pb.AdoptContainersRequest;
      return { services: [r.service], service: r.service, component: '', requestId: r.requestId };
    }
    case 'RollbackService': {
      const r = req as pb.RollbackServiceRequest;
      return { services: [r.service], service: r.service, component: '', requestId: r.requestId };
    }
    case 'CheckUpdates': {
      const r = req as pb.CheckUpdatesRequest;
      return r.service ? { ...none, services: [r.service], service: r.service } : none;
    }
    case 'RemoveService': {
      const r = req as pb.RemoveServiceRequest;
      return { services: [r.service], service: r.service, component: '', requestId: r.requestId };
    }
    case 'ServiceLogs': {
      const r = req as pb.ServiceLogsRequest;
      return { ...none, services: [r.service], service: r.service, component: r.component };
    }
    case 'GetServiceStatus':
    case 'PullFile': {
      const r = req as { service: string };
      return { ...none, services: [r.service], service: r.service };
    }
    case 'LiveCheck': {
      const r = req as pb.LiveCheckRequest;
      return r.service ? { ...none, services: [r.service], service: r.service } : none;
    }
    case 'PushFile': {
      const h = (req as pb.PushFileRequest).header;
      if (!h) return none;
      return { services: [h.service], service: h.service, component: '', requestId: h.requestId };
    }
    case 'ListServices':
    case 'NodeStatus':
    case 'QueryAudit':
    case 'VerifyAudit':
    case 'FollowAudit':
      return none;
  }
}

/** ProtoJSON of a request, for its digest (method syntax: any generated request codec fits). */
type Codec = { toJSON(message: unknown): unknown };

/** JSON with sorted keys, so equal requests hash equally whatever their field order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The request's digest for the audit record, or its problem as a client can act on it. One
 * conversion to ProtoJSON serves both: a value it cannot convert is bad input.
 */
function examineRequest(
  codec: Codec,
  req: unknown,
): { argsSha256: string } | { problem: InvalidArgumentError } {
  if (req instanceof UndecodableRequest) {
    return {
      problem: new InvalidArgumentError(
        `the request could not be decoded (${req.reason}): ${UNDECODABLE_ADVICE}`,
      ),
    };
  }
  let json: unknown;
  try {
    json = codec.toJSON(req);
  } catch (err) {
    return {
      problem: new InvalidArgumentError(
        `the request holds a value out of range (${err instanceof Error ? err.message : String(err)}): ${UNDECODABLE_ADVICE}`,
      ),
    };
  }
  return { argsSha256: createHash('sha256').update(canonicalJson(json)).digest('hex') };
}

/**
 * A request message that did not decode. grpc-js answers a deserializer that throws with
 * INTERNAL before any of our code runs; the agent's deserializers return this instead, so the
 * guard can refuse the call as the bad input it is, after authentication, and audit it.
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

const UNDECODABLE_ADVICE =
  'check that every integer field is below 2^53 and every timestamp lies between the years 0001 and 9999';

/** The generated service definition with deserializers that never throw (see UndecodableRequest). */
function tolerantDefinition(definition: typeof McpAgentServiceService): typeof McpAgentServiceService {
  const methods = Object.entries(definition).map(([name, method]) => {
    const decode = method.requestDeserialize as (bytes: Buffer) => unknown;
    const requestDeserialize = (bytes: Buffer) => {
      try {
        return decode(bytes);
      } catch (err) {
        return new UndecodableRequest(err instanceof Error ? err.message : String(err));
      }
    };
    return [name, { ...method, requestDeserialize }];
  });
  return Object.fromEntries(methods) as typeof McpAgentServiceService;
}

/**
 * The human's answer to the plan, as the connector that asked reports it, for the audit
 * record. Anything not in the one shape connectors write is recorded as such, never trusted
 * as an answer: the record says what was claimed, the caller's token says who claimed it.
 */
function confirmationOf(metadata: Metadata): { confirmation?: string } {
  const [value] = metadata.get(CONFIRMATION_METADATA);
  if (value === undefined) return {};
  const text = String(value);
  return { confirmation: isConfirmationText(text) ? text : 'malformed' };
}

function bearer(metadata: Metadata): string | undefined {
  const values = metadata.get('authorization');
  if (values.length !== 1) return undefined; // zero, or an ambiguous repeat
  const v = values[0];
  return typeof v === 'string' ? v : undefined;
}

const AUDIT_UNAVAILABLE =
  'the audit log cannot be written, so the agent refuses the call: check the disk and the database';

interface GuardedCall {
  metadata: Metadata;
  cancelled: boolean;
  on(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

class Guard {
  constructor(private readonly opts: AgentServerOptions) {}

  /**
   * Runs one call through authentication, authorization and audit. `readRequest` yields the
   * message authorization is decided on (for client streams, the first one), read only
   * after the caller is authenticated.
   */
  async run<Req, Res>(
    entry: RpcEntry,
    call: GuardedCall,
    readRequest: () => Promise<Req>,
    handle: (req: Req, ctx: CallContext) => Promise<Res>,
  ): Promise<Res> {
    const started = performance.now();
    const time = new Date();
    const rpc = entry.rpc as RpcName;
    const codec: Codec = rpcCodecs[rpc].request;
    const { audit, log } = this.opts;
    const base = { time, node: this.opts.node, rpc, tool: entry.tool ?? '' };

    let caller: Caller;
    try {
      caller = await this.opts.authenticator.authenticate(bearer(call.metadata));
    } catch (err) {
      const e = err instanceof UnauthenticatedError ? err : new UnauthenticatedError(toMcpError(err).message);
      await this.recordDenial({ ...base, decision: 'deny', errorCode: e.code, errorMessage: e.detail });
      log.warn('call refused: not authenticated', { rpc, reason: e.detail });
      throw e;
    }

    const req = await readRequest();
    const examined = examineRequest(codec, req);
    const problem = 'problem' in examined ? examined.problem : undefined;
    // A request that does not decode targets nothing; it is refused before authorization.
    const target = problem ? NO_TARGET : targetOf(rpc, req);
    const { authorizer } = this.opts;
    const roles = authorizer.rolesOf(caller);
    const record = {
      ...base,
      issuer: caller.issuer,
      subject: caller.subject,
      clientId: caller.clientId,
      roles,
      service: target.service,
      component: target.component,
      argsSha256: 'argsSha256' in examined ? examined.argsSha256 : '',
      requestId: target.requestId,
      ...confirmationOf(call.metadata),
    };
    try {
      if (problem) throw problem;
      if (target.services.some((s) => !s)) {
        throw new InvalidArgumentError(
          `${rpc}: the target service name is empty: name the service to act on`,
        );
      }
      authorizer.authorize(caller, entry.permission, target.services);
    } catch (err) {
      const e = toMcpError(err);
      await this.recordDenial({ ...record, decision: 'deny', errorCode: e.code, errorMessage: e.message });
      log.warn('call refused', { rpc, subject: caller.subject, code: e.code, reason: e.message });
      throw e;
    }

    let callId: string;
    try {
      // Waits for the batch this row joined to be committed and synced: durable before the handler.
      callId = (await audit.recordCall({ ...record, decision: 'allow' })).callId;
    } catch (err) {
      log.error('audit write failed: call refused', { rpc, subject: caller.subject, error: String(err) });
      throw new UnavailableError(AUDIT_UNAVAILABLE, { cause: err });
    }

    // grpc-js emits 'cancelled' on every call once its status is sent: the listener goes when
    // the handler is done, so a finished call does not abort (and build an abort reason) for nothing.
    let cancelled = call.cancelled;
    let abort: AbortController | undefined;
    const onCancelled = () => {
      cancelled = true;
      abort?.abort();
    };
    if (!cancelled) call.on('cancelled', onCancelled);
    // Built on first use: the read handlers never ask for the signal, a call on one service
    // never asks for the scope, and the call logger is for handlers that log.
    let scope: ServiceScope | undefined;
    let callLog: Logger | undefined;
    const ctx: CallContext = {
      rpc,
      caller,
      roles,
      get scope() {
        scope ??= authorizer.scopeOf(caller, entry.permission);
        return scope;
      },
      authorize: (permission, services) => authorizer.authorize(caller, permission, services),
      get signal() {
        if (abort === undefined) {
          abort = new AbortController();
          if (cancelled) abort.abort();
        }
        return abort.signal;
      },
      get log() {
        callLog ??= log.child({ rpc, subject: caller.subject, callId });
        return callLog;
      },
    };
    const finished = { rpc, subject: caller.subject, callId, service: target.service };
    let outcome: AuditOutcomeInput;
    try {
      const res = await handle(req, ctx);
      outcome = { outcome: 'ok', errorCode: '', errorMessage: '', durationMs: performance.now() - started };
      this.recordOutcome(callId, outcome, rpc);
      log.info('call', { ...finished, outcome: 'ok', durationMs: Math.round(outcome.durationMs) });
      return res;
    } catch (err) {
      const e = toMcpError(err);
      outcome = {
        outcome: 'error',
        errorCode: e.code,
        errorMessage: e.message,
        durationMs: performance.now() - started,
      };
      this.recordOutcome(callId, outcome, rpc);
      const level = e.code === 'INTERNAL' ? 'error' : 'info';
      log[level]('call', { ...finished, outcome: 'error', code: e.code, error: e.message });
      throw e;
    } finally {
      call.removeListener('cancelled', onCancelled);
    }
  }

  private async recordDenial(call: AuditCall): Promise<void> {
    try {
      await this.opts.audit.recordCall(call);
    } catch (err) {
      // The call is refused either way; the failure to record it is itself worth an alarm.
      this.opts.log.error('audit write failed for a refused call', { rpc: call.rpc, error: String(err) });
    }
  }

  /** Not awaited: the answer need not wait for the outcome's batch (see registry/audit.ts). */
  private recordOutcome(callId: string, outcome: AuditOutcomeInput, rpc: string): void {
    this.opts.audit.recordOutcome(callId, outcome).catch((err: unknown) => {
      // The effect has happened; the record keeps its attempt and reads back as `unknown`.
      this.opts.log.error('audit outcome write failed', { rpc, callId, error: String(err) });
    });
  }
}

async function writeWithBackpressure<T>(call: ServerWritableStream<unknown, T>, msg: T): Promise<void> {
  if (call.write(msg)) return;
  await new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      call.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      call.off('drain', onDrain);
      reject(err);
    };
    call.once('drain', onDrain);
    call.once('error', onError);
  });
}

async function firstMessage<Req>(iterator: AsyncIterator<Req>, rpc: string): Promise<Req> {
  const first = await iterator.next();
  if (first.done) throw new InvalidArgumentError(`${rpc}: the stream ended before its first message`);
  return first.value;
}

/** Builds the grpc-js implementation: every RPC in the contract, each through the guard. */
export function buildServiceImplementation(opts: AgentServerOptions): UntypedServiceImplementation {
  const guard = new Guard(opts);
  const impl: UntypedServiceImplementation = {};
  for (const entry of rpcs) {
    const handler: unknown = opts.handlers[entry.method];
    if (typeof handler !== 'function') throw new Error(`no handler for RPC ${entry.rpc}`);
    if (!entry.requestStream && !entry.responseStream) {
      const h = handler as UnaryHandler<unknown, unknown>;
      impl[entry.method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        guard
          .run(entry, call, async () => call.request, h)
          .then((res) => callback(null, res))
          .catch((err) => callback(toStatusObject(err)));
      };
    } else if (entry.responseStream && !entry.requestStream) {
      const h = handler as ServerStreamHandler<unknown, unknown>;
      impl[entry.method] = (call: ServerWritableStream<unknown, unknown>) => {
        guard
          .run(
            entry,
            call,
            async () => call.request,
            (req, ctx) => h(req, ctx, (msg) => writeWithBackpressure(call, msg)),
          )
          .then(() => call.end())
          // grpc-js sends a server stream's status on 'error'; destroy() would leave the client waiting.
          .catch((err) =>
            call.emit('error', Object.assign(new Error(toMcpError(err).message), toStatusObject(err))),
          );
      };
    } else if (entry.requestStream && !entry.responseStream) {
      const h = handler as ClientStreamHandler<unknown, unknown>;
      impl[entry.method] = (
        call: ServerReadableStream<unknown, unknown>,
        callback: sendUnaryData<unknown>,
      ) => {
        const iterator = call[Symbol.asyncIterator]();
        const rest: AsyncIterable<unknown> = { [Symbol.asyncIterator]: () => iterator };
        guard
          .run(
            entry,
            call,
            () => firstMessage(iterator, entry.rpc),
            (first, ctx) => h(first, rest, ctx),
          )
          .then((res) => callback(null, res))
          .catch((err) => {
            callback(toStatusObject(err));
            call.destroy();
          });
      };
    } else {
      throw new Error(`${(entry as RpcEntry).rpc}: bidirectional streaming is not supported by the guard`);
    }
  }
  return impl;
}

export interface TlsOptions {
  certPem: string | Buffer;
  keyPem: string | Buffer;
  /** When set, clients must present a certificate signed by this CA. */
  clientCaPem?: string | Buffer;
}

/** TLS 1.3 only: grpc-js has no option for it, so the constructor options are extended here. */
function tlsCredentials(tls: TlsOptions): ServerCredentials {
  const creds = ServerCredentials.createSsl(
    tls.clientCaPem ? Buffer.from(tls.clientCaPem) : null,
    [{ cert_chain: Buffer.from(tls.certPem), private_key: Buffer.from(tls.keyPem) }],
    Boolean(tls.clientCaPem),
  );
  const base = creds._getConstructorOptions.bind(creds);
  creds._getConstructorOptions = () => ({ ...base(), minVersion: 'TLSv1.3' });
  return creds;
}

export interface RunningServer {
  readonly port: number;
  /** Stop accepting calls, let in-flight ones finish within `graceMs`, then cut the rest. */
  shutdown(graceMs: number): Promise<void>;
}

export async function startAgentServer(
  opts: AgentServerOptions & { listen: string; tls: TlsOptions },
): Promise<RunningServer> {
  const server = new Server({
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
  });
  server.addService(
    tolerantDefinition(withFileChunkCodecs(McpAgentServiceService)),
    buildServiceImplementation(opts),
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(opts.listen, tlsCredentials(opts.tls), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
