/**
 * The OAuth 2.0 client side the connector shares between `mcp login` (connector/login.ts) and
 * the client credentials it fetches for the agents (connector/tokens.ts): the issuer's
 * endpoints from OIDC discovery, form and JSON POSTs with a timeout, and a refusal read from
 * the error fields of RFC 6749 §5.2 (which hold no secret; the rest of a body is never shown).
 */
import {
  discoveryUrl,
  fetchDiscoveryDocument,
  IDENTITY_REQUEST_TIMEOUT_MS,
  type IdentityFetch,
  parseIdentityUrl,
} from '../core/auth/http.js';
import { McpError, UnavailableError } from '../core/errors.js';
import { isRecord } from '../core/text.js';

/** An identity provider's answer: its HTTP status and JSON body (`{}` when there was none). */
export interface OAuthAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface OidcEndpoints {
  token: string;
  deviceAuthorization?: string;
}

/**
 * The issuer's endpoints from `.well-known/openid-configuration` (https unless loopback).
 * `hint` ends each error: what in which config to check.
 */
export async function discoverEndpoints(
  issuer: string,
  fetch: IdentityFetch,
  hint: string,
): Promise<OidcEndpoints> {
  const url = discoveryUrl(issuer);
  let doc: Record<string, unknown>;
  try {
    doc = await fetchDiscoveryDocument(url, fetch);
  } catch (err) {
    throw new UnavailableError(`OIDC discovery at ${url} failed: ${(err as Error).message}; ${hint}`, {
      cause: err,
    });
  }
  if (typeof doc.token_endpoint !== 'string') {
    throw new UnavailableError(`OIDC discovery at ${url} names no token_endpoint; ${hint}`);
  }
  const endpoint = (value: string, what: string) => {
    try {
      return parseIdentityUrl(value, `${what} from ${url}`).href;
    } catch (err) {
      throw new UnavailableError((err as Error).message, { cause: err });
    }
  };
  return {
    token: endpoint(doc.token_endpoint, 'token_endpoint'),
    deviceAuthorization:
      typeof doc.device_authorization_endpoint === 'string'
        ? endpoint(doc.device_authorization_endpoint, 'device_authorization_endpoint')
        : undefined,
  };
}

/**
 * A form POST to the issuer: a confidential client authenticates with client_secret_basic, a
 * public one (no secret) names itself with client_id (RFC 6749 §2.3.1, RFC 8628 §3.1).
 */
export async function postForm(
  fetch: IdentityFetch,
  url: string,
  body: URLSearchParams,
  clientId: string,
  secret: string | undefined,
): Promise<OAuthAnswer> {
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (secret === undefined) body.set('client_id', clientId);
  else
    headers.authorization = `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`).toString('base64')}`;
  return send(fetch, url, { method: 'POST', headers, body: body.toString() });
}

export async function postJson(
  fetch: IdentityFetch,
  url: string,
  body: Record<string, string>,
): Promise<OAuthAnswer> {
  return send(fetch, url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
}

async function send(
  fetch: IdentityFetch,
  url: string,
  init: { method: 'POST'; headers: Record<string, string>; body: string },
): Promise<OAuthAnswer> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(IDENTITY_REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw new UnavailableError(`${new URL(url).origin} did not answer: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const parsed: unknown = await res.json().catch(() => undefined);
  return { status: res.status, body: isRecord(parsed) ? parsed : {} };
}

/** The access token of a successful token response, else undefined. */
export function accessTokenOf(answer: OAuthAnswer): string | undefined {
  const token = answer.body.access_token;
  return answer.status === 200 && typeof token === 'string' && token !== '' ? token : undefined;
}

/**
 * A refused request as an error: UNAVAILABLE when the issuer failed (5xx), else
 * UNAUTHENTICATED. `message` turns the reason (`error: error_description`, or the status and
 * what was missing) into the whole message.
 */
export function refusal(
  answer: OAuthAnswer,
  expected: string,
  message: (reason: string) => string,
): McpError {
  const { error, error_description: description } = answer.body;
  const reason =
    typeof error === 'string'
      ? `${error}${typeof description === 'string' ? `: ${description}` : ''}`
      : `HTTP ${answer.status} without ${expected}`;
  return new McpError(answer.status >= 500 ? 'UNAVAILABLE' : 'UNAUTHENTICATED', message(reason));
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}
