/**
 * The agent's HTTP client for identity services: JWKS, OIDC discovery, MCIAS token validation.
 *
 * Built on node:http(s) rather than the global fetch because the global fetch cannot trust a
 * private CA without the undici package, and a self-hosted IdP usually sits behind one. It
 * returns a standard `Response`, so it also serves as jose's `customFetch`.
 *
 * Strict on purpose: redirects are not followed, responses are capped at 1 MiB, and plain http
 * is refused except on loopback (a key set fetched in the clear is a key set an attacker on the
 * path can replace).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isSecureUrl } from '../config-env.js';
import { isRecord } from '../text.js';
import { AuthConfigError } from './errors.js';

/** Time allowed for one request to an identity service, connection included. */
export const IDENTITY_REQUEST_TIMEOUT_MS = 5000;

const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface IdentityRequest {
  method: 'GET' | 'POST';
  headers?: Headers | Record<string, string>;
  body?: string;
  signal: AbortSignal;
  /** jose passes 'manual'; nothing else is supported. */
  redirect?: 'manual';
}

export type IdentityFetch = (url: string, init: IdentityRequest) => Promise<Response>;

/**
 * A fetch that trusts the CA certificates in `caFile` (PEM) instead of Node's bundled roots,
 * or the bundled roots when no file is given. The file is read once, here, so a wrong path
 * stops the agent at start-up.
 */
export function createIdentityFetch(caFile?: string): IdentityFetch {
  const ca = caFile === undefined ? undefined : readCaFile(caFile);
  return (url, init) => request(new URL(url), init, ca);
}

/**
 * Parses a configured identity-service URL and refuses plain http to anything but loopback.
 * `what` names the setting in the error.
 */
export function parseIdentityUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AuthConfigError(`${what}: ${JSON.stringify(value)} is not an absolute URL`);
  }
  if (isSecureUrl(url)) return url;
  throw new AuthConfigError(`${what}: ${url.href} must use https (plain http is allowed only on loopback)`);
}

function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AuthConfigError(`ca_file ${path} cannot be read: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new AuthConfigError(`ca_file ${path} holds no PEM certificate`);
  }
  return pem;
}

function request(url: URL, init: IdentityRequest, ca: string | undefined): Promise<Response> {
  return new Promise((resolve, reject) => {
    const { signal } = init;
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));

    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let size = 0;
      let ended = false;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          reject(new Error(`response from ${url.origin} is larger than ${MAX_RESPONSE_BYTES} bytes`));
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        ended = true;
        const status = res.statusCode ?? 0;
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (typeof value === 'string') responseHeaders.set(name, value);
          else if (Array.isArray(value)) for (const item of value) responseHeaders.append(name, item);
        }
        // The Response constructor refuses a body on these statuses, and statuses outside 200-599.
        const body = status === 204 || status === 205 || status === 304 ? null : Buffer.concat(chunks);
        if (status < 200 || status > 599) {
          reject(new Error(`unexpected HTTP status ${status} from ${url.origin}`));
          return;
        }
        resolve(new Response(body, { status, headers: responseHeaders }));
      });
      res.on('error', reject);
      res.on('close', () => {
        if (!ended) reject(new Error(`connection to ${url.origin} closed before the response ended`));
      });
    };

    const options: https.RequestOptions = { method: init.method, headers, signal };
    let req: http.ClientRequest;
    if (url.protocol === 'https:') {
      req = https.request(url, { ...options, ...(ca === undefined ? {} : { ca }) }, onResponse);
    } else if (url.protocol === 'http:') {
      req = http.request(url, options, onResponse);
    } else {
      reject(new Error(`unsupported protocol ${url.protocol}`));
      return;
    }
    req.on('error', (err) => reject(signal.aborted ? signal.reason : err));
    req.end(init.body);
  });
}

/** The issuer's OIDC discovery document's URL (`/.well-known/openid-configuration`). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

/** A discovery document that did not come back as one. */
export class DiscoveryError extends Error {
  override readonly name = 'DiscoveryError';
}

/**
 * Fetches an OIDC discovery document: a JSON object, or DiscoveryError saying what came back
 * instead (a network failure is thrown as the fetch threw it). Callers check the fields they need.
 */
export async function fetchDiscoveryDocument(
  url: string,
  fetch: IdentityFetch,
): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(IDENTITY_REQUEST_TIMEOUT_MS),
  });
  if (res.status !== 200) throw new DiscoveryError(`${url} answered HTTP ${res.status}`);
  const doc: unknown = await res.json().catch(() => undefined);
  if (!isRecord(doc)) throw new DiscoveryError(`${url} is not a JSON object`);
  return doc;
}
