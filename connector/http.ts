/**
 * Streamable HTTP mode: `/mcp` served with the SDK's transport, one MCP server per session
 * (or per request with `--stateless`), behind the checks the SDK leaves to us:
 *
 * - Host and Origin (DNS rebinding): a Host that is not this server's, or an Origin not in the
 *   allow list, is refused with 403. Loopback origins are allowed when bound to loopback.
 * - Caller authentication: a bearer token from one of the `[[http.issuers]]`, for the
 *   configured `resource` (its audience), checked by the agent's own authenticator. Missing or
 *   bad → 401 with `WWW-Authenticate: Bearer resource_metadata="…"` (RFC 9728), whose document
 *   is served at `/.well-known/oauth-protected-resource`. The caller's token then goes on to
 *   the agents, which check it again (see tokens.ts).
 *
 * Without `[http]` resource and issuers, the endpoint is unauthenticated and uses the
 * connector's own token: allowed on loopback only. Off loopback, TLS is required too.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { toNodeHandler } from '@modelcontextprotocol/node';
import {
  type AuthInfo,
  createMcpHandler,
  isLegacyRequest,
  legacyStatelessFallback,
  type McpHandlerRequestOptions,
  type Server,
  WebStandardStreamableHTTPServerTransport,
} from '@modelcontextprotocol/server';
import { type Authenticator, createAuthenticator } from '../core/auth/authenticator.js';
import type { Caller } from '../core/auth/caller.js';
import type { TrustedIssuerConfig } from '../core/auth/issuers.js';
import { isLoopbackHost, parseHostPort } from '../core/config-env.js';
import { InvalidArgumentError, UnauthenticatedError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ConnectorTools } from './mcp-server.js';

export const MCP_PATH = '/mcp';
const METADATA_PATH = '/.well-known/oauth-protected-resource';
/** Sessions nobody has used for this long are closed. */
const SESSION_IDLE_MS = 30 * 60_000;
/** Refusal log lines per minute; past it, one line counts the rest (a flood must not fill the disk). */
const REFUSALS_PER_MINUTE = 60;

export interface HttpAuth {
  /** The protected resource: the audience callers' tokens must carry. */
  resource: string;
  issuers: readonly TrustedIssuerConfig[];
}

export interface HttpServerOptions {
  /** `host:port`. */
  listen: string;
  stateless: boolean;
  /** PEM file paths; required off loopback. */
  tls?: { certFile: string; keyFile: string };
  /** Caller authentication; required off loopback. */
  auth?: HttpAuth;
  /** Origins allowed besides loopback ones (when bound to loopback). */
  allowedOrigins: readonly string[];
  tools: ConnectorTools;
  log: Logger;
  /** Tests inject an authenticator; otherwise built from `auth.issuers`. */
  authenticator?: Authenticator;
  /** Refusals logged per minute before the rest are only counted (default REFUSALS_PER_MINUTE). */
  refusalsPerMinute?: number;
}

export interface RunningHttpServer {
  /** `http(s)://host:port/mcp`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Refuses an exposed endpoint without TLS or without caller authentication. */
export function checkExposure(listen: string, tls: boolean, auth: boolean): void {
  const { host } = parseHostPort(listen, { listen: true });
  if (isLoopbackHost(host)) return;
  const missing = [
    !tls && 'TLS (--tls-cert and --tls-key)',
    !auth && 'caller authentication ([http] resource and [[http.issuers]] in the config)',
  ].filter((m): m is string => m !== false);
  if (missing.length > 0) {
    throw new InvalidArgumentError(
      `refusing to serve MCP on ${listen}, which is not a loopback address, without ${missing.join(' and ')}: anyone who can reach it could drive the fleet. Bind 127.0.0.1, or configure what is missing`,
    );
  }
}

/** The connector's issuers as the agent's authenticator takes them, all with the resource as audience. */
export function httpIssuers(auth: HttpAuth): TrustedIssuerConfig[] {
  // One protected resource, one audience: whatever else an issuer entry lists. MCIAS answers
  // carry no audience to check, so theirs is dropped.
  return auth.issuers.map(
    (issuer): TrustedIssuerConfig =>
      issuer.type === 'mcias' ? { ...issuer, audience: undefined } : { ...issuer, audience: [auth.resource] },
  );
}

/** RFC 9728 §3.1: the metadata URL inserts the well-known path between the host and the resource's path. */
export function resourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}${METADATA_PATH}${path}`;
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  server: Server;
  /** `issuer subject` of the caller who opened it; '' without authentication. */
  owner: string;
  lastUsed: number;
}

type AuthedRequest = IncomingMessage & { auth?: AuthInfo };

/** A request step's verdict: `handled` when it has answered (refused, or served) already. */
type Step = 'handled' | 'continue';

export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const { host, port } = parseHostPort(opts.listen, { listen: true });
  checkExposure(opts.listen, opts.tls !== undefined, opts.auth !== undefined);
  const log = opts.log;
  const refusals = new RefusalLog(log, opts.refusalsPerMinute ?? REFUSALS_PER_MINUTE);
  const hostAndOrigin = new HostAndOriginCheck(isLoopbackHost(host), opts.allowedOrigins, refusals);
  const metadata = opts.auth && new ResourceMetadata(opts.auth);
  const authentication =
    opts.auth &&
    metadata &&
    new CallerAuthentication(
      opts.authenticator ?? createAuthenticator(httpIssuers(opts.auth)),
      metadata.url,
      refusals,
    );
  const eras = new ProtocolEras(opts.tools, opts.stateless, log, refusals);

  const handle = async (req: AuthedRequest, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://placeholder').pathname;
    if (hostAndOrigin.check(req, res) === 'handled') return;
    if (path === '/healthz') return json(res, 200, { status: 'ok', sessions: eras.sessions });
    if (metadata?.serve(req, res, path) === 'handled') return;
    if (path !== MCP_PATH) return json(res, 404, { error: 'not found', endpoint: MCP_PATH });
    if (authentication && (await authentication.authenticate(req, res)) === 'handled') return;
    await eras.serve(req, res);
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      log.error('HTTP request failed', { error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) refuse(res, 500, 'internal error in mcp-connector: see its log');
      else res.end();
    });
  };
  const httpServer = await listen(host, port, opts.tls, listener);
  const bound = (httpServer.address() as AddressInfo).port;
  hostAndOrigin.allowHosts(hostsFor(host, bound, isLoopbackHost(host), opts.auth?.resource));
  const scheme = opts.tls ? 'https' : 'http';
  const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${bound}${MCP_PATH}`;
  log.info('serving MCP over HTTP', {
    url,
    protocols: `2026-07-28 (stateless) and 2025-era (${opts.stateless ? 'stateless' : 'sessions'})`,
    authentication: opts.auth
      ? `tokens for ${opts.auth.resource}`
      : "none (loopback only; the connector's own token goes to the agents)",
  });

  return {
    url,
    close: async () => {
      refusals.close();
      await eras.close();
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    },
  };
}

/**
 * The two protocol eras on one endpoint. A request carrying the 2026-07-28 `_meta` envelope
 * goes to the SDK's stateless handler, which builds a server for that request alone; anything
 * else (`initialize`, a 2025 session's POSTs, GET and DELETE) goes to the 2025 leg: sessions
 * owned by their caller, or one server per request with `--stateless`. Both legs see the
 * caller's validated token as `authInfo`.
 */
class ProtocolEras {
  private readonly modern;
  /** The 2025 leg; `peer` is the remote address, for the refusal log. */
  private readonly legacy: (
    request: Request,
    options: McpHandlerRequestOptions | undefined,
    peer: string,
  ) => Promise<Response>;
  private readonly legacySessions?: Sessions;
  private readonly onerror: (error: Error) => void;

  constructor(tools: ConnectorTools, stateless: boolean, log: Logger, refusals: RefusalLog) {
    const onerror = (error: Error) => log.warn('MCP request failed', { error: error.message });
    const factory = () => tools.createServer();
    this.modern = createMcpHandler(factory, { legacy: 'reject', onerror });
    if (stateless) {
      this.legacy = legacyStatelessFallback(factory, onerror);
    } else {
      const sessions = new Sessions(tools, refusals);
      this.legacySessions = sessions;
      this.legacy = (request, options, peer) => sessions.serve(request, options?.authInfo, peer);
    }
    this.onerror = onerror;
  }

  get sessions(): number {
    return this.legacySessions?.size ?? 0;
  }

  serve(req: AuthedRequest, res: ServerResponse): Promise<void> {
    // The SDK's Node adapter: Node request to web Request (the client hanging up aborts it)
    // and the Response, streamed or not, back to Node; `req.auth` becomes `authInfo`.
    const route = async (request: Request, options?: McpHandlerRequestOptions) => {
      return (await isLegacyRequest(request))
        ? this.legacy(request, options, req.socket.remoteAddress ?? '')
        : this.modern.fetch(request, options);
    };
    return toNodeHandler({ fetch: route }, { onerror: this.onerror })(req, res);
  }

  async close(): Promise<void> {
    await this.modern.close();
    await this.legacySessions?.close();
  }
}

/**
 * DNS rebinding: a Host that is not this server's, or an Origin not in the allow list, is
 * refused with 403; an allowed Origin gets CORS headers, and its preflight is answered here.
 */
class HostAndOriginCheck {
  /** Known once the port is bound; until then every Host is refused. */
  private allowedHosts = new Set<string>();

  constructor(
    private readonly loopback: boolean,
    private readonly allowedOrigins: readonly string[],
    private readonly refusals: RefusalLog,
  ) {}

  allowHosts(hosts: Set<string>): void {
    this.allowedHosts = hosts;
  }

  check(req: IncomingMessage, res: ServerResponse): Step {
    if (!this.allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      this.refusals.record("Host header not this server's", peerOf(req));
      refuse(res, 403, `Host header "${req.headers.host ?? ''}" is not this server's`);
      return 'handled';
    }
    const origin = req.headers.origin;
    if (origin === undefined) return 'continue';
    if (!this.originAllowed(origin)) {
      this.refusals.record('Origin not allowed', peerOf(req), { origin });
      refuse(
        res,
        403,
        `Origin ${origin} is not allowed: add it to [http] allowed_origins to let it call this server`,
      );
      return 'handled';
    }
    cors(res, origin);
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return 'handled';
    }
    return 'continue';
  }

  /** Listed origins; loopback ones too when the server is bound to loopback. */
  private originAllowed(origin: string): boolean {
    if (this.allowedOrigins.includes(origin)) return true;
    if (!this.loopback) return false;
    try {
      return isLoopbackHost(new URL(origin).hostname);
    } catch {
      return false;
    }
  }
}

/** RFC 9728 protected resource metadata: the document, and where it is served. */
class ResourceMetadata {
  readonly url: string;
  private readonly document: Record<string, unknown>;
  private readonly paths: Set<string>;

  constructor(auth: HttpAuth) {
    this.document = {
      resource: auth.resource,
      authorization_servers: auth.issuers.flatMap((i) => (i.type === 'jwt' ? [i.issuer] : [])),
      bearer_methods_supported: ['header'],
      resource_name: 'mcp fleet connector',
    };
    this.url = resourceMetadataUrl(auth.resource);
    this.paths = new Set([METADATA_PATH, new URL(this.url).pathname]);
  }

  serve(req: IncomingMessage, res: ServerResponse, path: string): Step {
    if (req.method !== 'GET' || !this.paths.has(path)) return 'continue';
    json(res, 200, this.document);
    return 'handled';
  }
}

/**
 * The caller's bearer token, checked for this resource. Missing, bad, or given more than once:
 * 401 with a `WWW-Authenticate` challenge naming the metadata document.
 */
class CallerAuthentication {
  constructor(
    private readonly authenticator: Authenticator,
    private readonly metadataUrl: string,
    private readonly refusals: RefusalLog,
  ) {}

  /** Sets `req.auth` (the token and the caller) and continues, or answers 401. */
  async authenticate(req: AuthedRequest, res: ServerResponse): Promise<Step> {
    // Node keeps only the first of repeated Authorization headers; which one a proxy or the
    // agent would read is anyone's guess, so a request with two is refused outright.
    const given = req.headersDistinct.authorization ?? [];
    const authorization = given[0];
    let caller: Caller;
    try {
      if (given.length > 1) throw new UnauthenticatedError('more than one Authorization header');
      caller = await this.authenticator.authenticate(authorization);
    } catch (err) {
      const detail = err instanceof UnauthenticatedError ? err.detail : String(err);
      this.refusals.record('not authenticated', peerOf(req), { detail });
      // Fixed words only: nothing from the request or the verifier reaches the header.
      const challenge =
        authorization === undefined
          ? `Bearer resource_metadata="${this.metadataUrl}"`
          : `Bearer error="invalid_token", error_description="the access token is missing, invalid, expired or not for this resource", resource_metadata="${this.metadataUrl}"`;
      res.setHeader('WWW-Authenticate', challenge);
      json(res, 401, { error: 'invalid_token', error_description: UnauthenticatedError.MESSAGE });
      return 'handled';
    }
    const token = (authorization ?? '').replace(/^Bearer /i, '');
    req.auth = { token, clientId: caller.clientId || caller.subject, scopes: [], extra: { caller } };
    return 'continue';
  }
}

/**
 * Refusals at the HTTP edge never reach an agent, so no audit record tells of them: each is
 * one structured log line (reason, remote address, time; never a token) on the connector's
 * log. At most `perMinute` lines a minute; past that the refusals are counted, and one line
 * says how many were suppressed when the minute ends.
 */
export class RefusalLog {
  private logged = 0;
  private suppressed = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    private readonly perMinute: number,
  ) {
    this.timer = setInterval(() => this.rollOver(), 60_000);
    this.timer.unref();
  }

  record(reason: string, remote: string, fields: Record<string, unknown> = {}): void {
    if (this.logged >= this.perMinute) {
      this.suppressed++;
      return;
    }
    this.logged++;
    this.log.warn('http request refused', { reason, remote, ...fields });
  }

  /** Ends the current minute: reports what was suppressed, and logs again. */
  rollOver(): void {
    if (this.suppressed > 0) {
      this.log.warn(`suppressed ${this.suppressed} refusals`, {
        reason: 'refusal log rate limit',
        perMinute: this.perMinute,
        suppressed: this.suppressed,
      });
    }
    this.logged = 0;
    this.suppressed = 0;
  }

  close(): void {
    clearInterval(this.timer);
    this.rollOver();
  }
}

function peerOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

/**
 * 2025-era MCP sessions, each with its own server, owned by the caller who opened it. Sessions
 * nobody has used for SESSION_IDLE_MS are closed.
 */
class Sessions {
  private readonly sessions = new Map<string, Session>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly tools: ConnectorTools,
    private readonly refusals: RefusalLog,
  ) {
    this.sweep = this.sweepIdle();
  }

  get size(): number {
    return this.sessions.size;
  }

  async serve(request: Request, authInfo: AuthInfo | undefined, peer: string): Promise<Response> {
    const owner = ownerOf(authInfo);
    const sessionId = request.headers.get('mcp-session-id');
    if (sessionId !== null) {
      const session = this.sessions.get(sessionId);
      // Another caller's session is reported as missing, not as forbidden: ids are not to be probed.
      if (!session || session.owner !== owner) {
        if (session) this.refusals.record('session owned by another caller', peer);
        return refusal(404, 'session not found: initialize a new one');
      }
      session.lastUsed = Date.now();
      return session.transport.handleRequest(request, { authInfo });
    }
    // No session yet: a new transport, kept only if this request initializes it.
    let entry: Session | undefined;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => {
        if (entry) this.sessions.set(id, entry);
      },
    });
    const server = this.tools.createServer();
    entry = { transport, server, owner, lastUsed: Date.now() };
    transport.onclose = () => {
      if (transport.sessionId) this.sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    const response = await transport.handleRequest(request, { authInfo });
    if (transport.sessionId === undefined) {
      await transport.close();
      await server.close();
    }
    return response;
  }

  /** Closes sessions nobody has used for SESSION_IDLE_MS, checking every minute. */
  private sweepIdle(): NodeJS.Timeout {
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const [id, session] of this.sessions) {
        if (now - session.lastUsed < SESSION_IDLE_MS) continue;
        this.sessions.delete(id);
        void session.transport.close();
        void session.server.close();
      }
    }, 60_000);
    sweep.unref();
    return sweep;
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    for (const session of this.sessions.values()) {
      await session.transport.close();
      await session.server.close();
    }
    this.sessions.clear();
  }
}

/** `issuer subject` of an authenticated caller; '' without authentication. */
function ownerOf(authInfo: AuthInfo | undefined): string {
  const caller = authInfo?.extra?.caller as Caller | undefined;
  return caller ? `${caller.issuer} ${caller.subject}` : '';
}

/** Listens on `host:port`, over TLS when certificate files are given. */
async function listen(
  host: string,
  port: number,
  tls: HttpServerOptions['tls'],
  listener: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<http.Server> {
  const httpServer = tls
    ? https.createServer({ cert: readPem(tls.certFile), key: readPem(tls.keyFile) }, listener)
    : http.createServer(listener);
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  return httpServer;
}

/** Host header values that name this server: its address, loopback aliases, the resource's host. */
function hostsFor(host: string, port: number, loopback: boolean, resource: string | undefined): Set<string> {
  const names = [host.includes(':') ? `[${host}]` : host];
  if (loopback) names.push('localhost', '127.0.0.1', '[::1]');
  const hosts = new Set(names.map((name) => `${name}:${port}`.toLowerCase()));
  if (resource) hosts.add(new URL(resource).host.toLowerCase());
  return hosts;
}

function cors(res: ServerResponse, origin: string): void {
  res.setHeader('Access-Control-Allow-Origin', origin);
  res.setHeader('Vary', 'Origin');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS');
  res.setHeader(
    'Access-Control-Allow-Headers',
    'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id',
  );
  res.setHeader('Access-Control-Expose-Headers', 'mcp-session-id, www-authenticate');
}

function json(res: ServerResponse, statusCode: number, body: unknown): void {
  res.writeHead(statusCode, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** A refusal as a JSON-RPC error, which MCP clients show: the web Response form. */
function refusal(status: number, message: string): Response {
  return Response.json({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }, { status });
}

/** A refusal as a JSON-RPC error, which MCP clients show. */
function refuse(res: ServerResponse, statusCode: number, message: string): void {
  json(res, statusCode, { jsonrpc: '2.0', error: { code: -32000, message }, id: null });
}

function readPem(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${file}: cannot read the TLS file: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
