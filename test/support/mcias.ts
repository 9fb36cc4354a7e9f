/**
 * FAKE: a stand-in for MCIAS, the platform's identity service, which cannot run here. It serves
 * only what the agent and `mcp login` call, on 127.0.0.1: `POST /v1/token/validate` with
 * `{"token": ...}` answering `{valid, sub, roles, expires_at}`, and `POST /v1/auth/login` with
 * `{"username", "password"}` answering `{token, expires_at}` for a user added with `addUser`. It counts validation requests, so a test can
 * prove the agent's cache, and lets a test revoke a token or make the endpoint fail.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

interface IssuedToken {
  sub: string;
  roles: string[];
  expiresAt: Date;
  aud: string | undefined;
  revoked: boolean;
}

export interface MciasStandIn {
  serverUrl: string;
  /** Validation requests received so far. */
  readonly requests: number;
  /** Mints an opaque token MCIAS will call valid. Default lifetime one hour. */
  issue(sub: string, roles: string[], options?: { expiresInSeconds?: number; aud?: string }): string;
  revoke(token: string): void;
  /** A user who can sign in at `/v1/auth/login`; their tokens carry `roles`. */
  addUser(username: string, password: string, roles: string[]): void;
  /** Make every validation request answer this HTTP status (undefined: answer normally). */
  failWith(status: number | undefined): void;
  close(): Promise<void>;
}

export async function startMciasStandIn(): Promise<MciasStandIn> {
  const tokens = new Map<string, IssuedToken>();
  let requests = 0;
  let failStatus: number | undefined;
  const users = new Map<string, { password: string; roles: string[] }>();

  const issue = (sub: string, roles: string[], options: { expiresInSeconds?: number; aud?: string } = {}) => {
    const token = randomBytes(24).toString('base64url');
    const expiresAt = new Date(Date.now() + (options.expiresInSeconds ?? 3600) * 1000);
    tokens.set(token, { sub, roles, expiresAt, aud: options.aud, revoked: false });
    return { token, expiresAt };
  };

  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/v1/auth/login') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        let body: { username?: unknown; password?: unknown } = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
        } catch {
          res.writeHead(400).end();
          return;
        }
        const user = typeof body.username === 'string' ? users.get(body.username) : undefined;
        if (!user || user.password !== body.password) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid credentials"}');
          return;
        }
        const { token, expiresAt } = issue(body.username as string, user.roles);
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ token, expires_at: expiresAt.toISOString() }));
      });
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/token/validate') {
      res.writeHead(404).end();
      return;
    }
    requests += 1;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (failStatus !== undefined) {
        res.writeHead(failStatus).end();
        return;
      }
      let token: unknown;
      try {
        ({ token } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { token?: unknown });
      } catch {
        res.writeHead(400).end();
        return;
      }
      const issued = typeof token === 'string' ? tokens.get(token) : undefined;
      const valid = issued !== undefined && !issued.revoked && issued.expiresAt.getTime() > Date.now();
      const answer = valid
        ? {
            valid: true,
            sub: issued.sub,
            roles: issued.roles,
            expires_at: issued.expiresAt.toISOString(),
            ...(issued.aud === undefined ? {} : { aud: issued.aud }),
          }
        : { valid: false };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    serverUrl: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    issue: (sub, roles, options = {}) => issue(sub, roles, options).token,
    addUser(username, password, roles) {
      users.set(username, { password, roles });
    },
    revoke(token) {
      const issued = tokens.get(token);
      if (issued) issued.revoked = true;
    },
    failWith(status) {
      failStatus = status;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
