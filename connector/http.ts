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
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
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
  transport: StreamableHTTPServerTransport;
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
  const hostAndOrigin = new HostAndOriginCheck(isLoopbackHost(host), opts.allowedOrigins, log);
  const metadata = opts.auth && new ResourceMetadata(opts.auth);
  const authentication =
    opts.auth &&
    metadata &&
    new CallerAuthentication(
      opts.authenticator ?? createAuthenticator(httpIssuers(opts.auth)),
      metadata.url,
      log,
    );
  const sessions = new Sessions(opts.tools);
  const sweep = sessions.sweepIdle();

  const handle = async (req: AuthedRequest, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://placeholder').pathname;
    if (hostAndOrigin.check(req, res) === 'handled') return;
    if (path === '/healthz') return json(res, 200, { status: 'ok', sessions: sessions.size });
    if (metadata?.serve(req, res, path) === 'handled') return;
    if (path !== MCP_PATH) return json(res, 404, { error: 'not found', endpoint: MCP_PATH });
    let owner = '';
    if (authentication) {
      const caller = await authentication.authenticate(req, res);
      if (caller === undefined) return;
      owner = caller;
    }
    if (opts.stateless) return sessions.serveStateless(req, res);
    return sessions.serve(req, res, owner);
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
    stateless: opts.stateless,
    authentication: opts.auth
      ? `tokens for ${opts.auth.resource}`
      : "none (loopback only; the connector's own token goes to the agents)",
  });

  return {
    url,
    close: async () => {
      clearInterval(sweep);
      await sessions.closeAll();
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    },
  };
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
    private readonly log: Logger,
  ) {}

  allowHosts(hosts: Set<string>): void {
    this.allowedHosts = hosts;
  }

  check(req: IncomingMessage, res: ServerResponse): Step {
    if (!this.allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      refuse(res, 403, `Host header "${req.headers.host ?? ''}" is not this server's`);
      return 'handled';
    }
    const origin = req.headers.origin;
    if (origin === undefined) return 'continue';
    if (!this.originAllowed(origin)) {
      this.log.warn('request refused: origin not allowed', { origin });
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
 * The caller's bearer token, checked for this resource. Missing or bad: 401 with a
 * `WWW-Authenticate` challenge naming the metadata document.
 */
class CallerAuthentication {
  constructor(
    private readonly authenticator: Authenticator,
    private readonly metadataUrl: string,
    private readonly log: Logger,
  ) {}

  /** The session owner (`issuer subject`), with `req.auth` set; undefined when refused. */
  async authenticate(req: AuthedRequest, res: ServerResponse): Promise<string | undefined> {
    const authorization = req.headers.authorization;
    let caller: Caller;
    try {
      caller = await this.authenticator.authenticate(authorization);
    } catch (err) {
      const detail = err instanceof UnauthenticatedError ? err.detail : String(err);
      this.log.info('request refused: not authenticated', { reason: detail });
      // Fixed words only: nothing from the request or the verifier reaches the header.
      const challenge =
        authorization === undefined
          ? `Bearer resource_metadata="${this.metadataUrl}"`
          : `Bearer error="invalid_token", error_description="the access token is missing, invalid, expired or not for this resource", resource_metadata="${this.metadataUrl}"`;
      res.setHeader('WWW-Authenticate', challenge);
      json(res, 401, { error: 'invalid_token', error_description: UnauthenticatedError.MESSAGE });
      return undefined;
    }
    const token = (authorization ?? '').replace(/^Bearer /i, '');
    req.auth = { token, clientId: caller.clientId || caller.subject, scopes: [], extra: { caller } };
    return `${caller.issuer} ${caller.subject}`;
  }
}

/** MCP sessions, each with its own server, owned by the caller who opened it; or none (stateless). */
class Sessions {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly tools: ConnectorTools) {}

  get size(): number {
    return this.sessions.size;
  }

  /** One server and transport for this request alone. */
  async serveStateless(req: AuthedRequest, res: ServerResponse): Promise<void> {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    const server = this.tools.createServer();
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  }

  async serve(req: AuthedRequest, res: ServerResponse, owner: string): Promise<void> {
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const session = this.sessions.get(sessionId);
      // Another caller's session is reported as missing, not as forbidden: ids are not to be probed.
      if (!session || session.owner !== owner)
        return refuse(res, 404, 'session not found: initialize a new one');
      session.lastUsed = Date.now();
      await session.transport.handleRequest(req, res);
      return;
    }
    // No session yet: a new transport, kept only if this request initializes it.
    let entry: Session | undefined;
    const transport = new StreamableHTTPServerTransport({
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
    await transport.handleRequest(req, res);
    if (transport.sessionId === undefined) {
      await transport.close();
      await server.close();
    }
  }

  /** Closes sessions nobody has used for SESSION_IDLE_MS, checking every minute. */
  sweepIdle(): NodeJS.Timeout {
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

  async closeAll(): Promise<void> {
    for (const session of this.sessions.values()) {
      await session.transport.close();
      await session.server.close();
    }
    this.sessions.clear();
  }
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
