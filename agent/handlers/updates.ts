/**
 * CheckUpdates: for each running component, whether its registry now has another image under
 * the tag it was deployed from.
 *
 * The running side is the digests the container's image was pulled as (`image inspect`
 * RepoDigests: podman keeps several per repository, one per manifest form it has seen). The
 * registry side is one `HEAD /v2/<repository>/manifests/<tag>` of the OCI distribution API,
 * its `Docker-Content-Digest`. The tag has moved when that digest is none of the running ones.
 * Plain HTTP only for loopback registries and the ones the agent config lists in
 * `insecure_registries`; anonymous bearer tokens are fetched when a registry asks for one.
 * Everything is bounded by one deadline per node: a registry that does not answer in time is
 * an `unknown` with the reason, never a failed call.
 */
import { isIP } from 'node:net';
import type { CheckUpdatesRequest, CheckUpdatesResponse, ImageUpdate } from '../../gen/mcp/v1/mcp.js';
import type { ComponentRecord } from '../../registry/services.js';
import type { UnaryHandler } from '../server.js';
import { requireService, type ServiceContext } from './context.js';

/** The most one check_updates call spends on a node, registries included. */
export const CHECK_UPDATES_DEADLINE_MS = 10_000;

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export function checkUpdatesHandler(
  sc: ServiceContext,
): UnaryHandler<CheckUpdatesRequest, CheckUpdatesResponse> {
  return async (req, ctx) => {
    const { registry, runtime, config } = sc.deps;
    if (req.service) requireService(sc, req.service, 'list_services shows the services it has');
    const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(CHECK_UPDATES_DEADLINE_MS)]);
    const running = new Map(
      (await runtime.list()).filter((c) => c.state === 'running').map((c) => [c.name, c]),
    );
    const components = registry.services
      .list()
      .filter((s) => (!req.service || s.name === req.service) && ctx.scope.allows(s.name))
      .flatMap((s) => s.components)
      .filter((c) => c.desiredState !== 'ignore' && running.has(c.container));
    // One registry request per image reference, however many components run it.
    const lookups = new Map<string, Promise<RegistryAnswer>>();
    const lookup = (ref: ImageRef) => {
      const key = `${ref.registry}/${ref.repository}:${ref.tag}`;
      let answer = lookups.get(key);
      if (!answer) {
        answer = registryDigest(ref, config.insecureRegistries ?? [], signal);
        lookups.set(key, answer);
      }
      return answer;
    };
    const updates = await Promise.all(
      components.map((c) => checkComponent(sc, c, running.get(c.container)?.image ?? c.image, lookup)),
    );
    return { updates };
  };
}

type RegistryAnswer = { digest: string } | { problem: string };

async function checkComponent(
  sc: ServiceContext,
  component: ComponentRecord,
  image: string,
  lookup: (ref: ImageRef) => Promise<RegistryAnswer>,
): Promise<ImageUpdate> {
  const base = { service: component.service, component: component.name, image };
  const unknown = (reason: string, found: Partial<ImageUpdate> = {}): ImageUpdate => ({
    runningDigest: '',
    registryDigest: '',
    ...base,
    ...found,
    status: 'unknown',
    reason,
  });
  const ref = parseImageRef(image);
  if ('problem' in ref) return unknown(ref.problem);
  const [running, answer] = await Promise.all([runningDigests(sc, component.container, ref), lookup(ref)]);
  if ('problem' in running)
    return unknown(running.problem, 'digest' in answer ? { registryDigest: answer.digest } : {});
  if ('problem' in answer) return unknown(answer.problem, { runningDigest: running.digests[0] ?? '' });
  const current = running.digests.includes(answer.digest);
  return {
    ...base,
    runningDigest: current ? answer.digest : (running.digests[0] ?? ''),
    registryDigest: answer.digest,
    status: current ? 'current' : 'update_available',
    reason: '',
  };
}

/** The digests the container's image carries for the image's repository. */
async function runningDigests(
  sc: ServiceContext,
  container: string,
  ref: ImageRef,
): Promise<{ digests: string[] } | { problem: string }> {
  try {
    const details = await sc.deps.runtime.inspect(container);
    if (!details) return { problem: `container ${container} is gone` };
    const all = await sc.deps.runtime.imageRepoDigests(details.imageId);
    const digests = all.flatMap((entry) => {
      const at = entry.lastIndexOf('@');
      return at > 0 && sameRepository(entry.slice(0, at), ref) ? [entry.slice(at + 1)] : [];
    });
    if (digests.length === 0) {
      return {
        problem: `the running image has no digest from ${ref.registry}: it was not pulled from there`,
      };
    }
    return { digests };
  } catch (err) {
    return {
      problem: `could not read the running image: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

export interface ImageRef {
  /** `host[:port]`; `docker.io` for Docker Hub. */
  registry: string;
  repository: string;
  tag: string;
}

/** `127.0.0.1:5000/web:v1` → registry, repository, tag; a problem for references no registry can answer. */
export function parseImageRef(image: string): ImageRef | { problem: string } {
  if (image.includes('@')) return { problem: 'pinned by digest: its tag cannot move' };
  const slash = image.indexOf('/');
  const first = slash < 0 ? '' : image.slice(0, slash);
  const hasRegistry = first.includes('.') || first.includes(':') || first === 'localhost';
  if (first === 'localhost') return { problem: 'a local image (localhost/...): there is no registry to ask' };
  const registry = hasRegistry ? first : 'docker.io';
  const rest = hasRegistry ? image.slice(slash + 1) : image;
  const colon = rest.lastIndexOf(':');
  const name = colon > rest.lastIndexOf('/') && colon >= 0 ? rest.slice(0, colon) : rest;
  const tag = colon > rest.lastIndexOf('/') && colon >= 0 ? rest.slice(colon + 1) : 'latest';
  const repository = registry === 'docker.io' && !name.includes('/') ? `library/${name}` : name;
  return { registry, repository, tag };
}

function sameRepository(name: string, ref: ImageRef): boolean {
  const parsed = parseImageRef(`${name}:x`);
  return !('problem' in parsed) && parsed.registry === ref.registry && parsed.repository === ref.repository;
}

/** Whether a registry may be reached over plain HTTP: loopback, or listed as insecure. */
export function allowsPlainHttp(registry: string, insecure: readonly string[]): boolean {
  if (insecure.includes(registry)) return true;
  const host = registry.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** The registry's digest for the tag now, or why it cannot be known. */
async function registryDigest(
  ref: ImageRef,
  insecure: readonly string[],
  signal: AbortSignal,
): Promise<RegistryAnswer> {
  const host = ref.registry === 'docker.io' ? 'registry-1.docker.io' : ref.registry;
  const scheme = allowsPlainHttp(ref.registry, insecure) ? 'http' : 'https';
  const url = `${scheme}://${host}/v2/${ref.repository}/manifests/${encodeURIComponent(ref.tag)}`;
  try {
    let response = await fetch(url, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT }, signal });
    if (response.status === 401) {
      const token = await anonymousToken(response.headers.get('www-authenticate') ?? '', signal);
      if (token) {
        response = await fetch(url, {
          method: 'HEAD',
          headers: { accept: MANIFEST_ACCEPT, authorization: `Bearer ${token}` },
          signal,
        });
      }
    }
    if (response.status === 404)
      return { problem: `${ref.registry} has no tag ${ref.tag} of ${ref.repository}` };
    if (response.status === 401 || response.status === 403) {
      return {
        problem: `${ref.registry} refused an anonymous read of ${ref.repository} (HTTP ${response.status})`,
      };
    }
    if (!response.ok) return { problem: `${ref.registry} answered HTTP ${response.status} for ${url}` };
    const digest = response.headers.get('docker-content-digest');
    if (!digest)
      return { problem: `${ref.registry} gave no Docker-Content-Digest for ${ref.repository}:${ref.tag}` };
    return { digest };
  } catch (err) {
    const timedOut = signal.aborted;
    const why = timedOut
      ? `no answer within ${CHECK_UPDATES_DEADLINE_MS / 1000} s`
      : String((err as { cause?: unknown }).cause ?? err);
    return { problem: `${ref.registry} cannot be reached over ${scheme}: ${why}` };
  }
}

/** An anonymous pull token from a `Bearer realm=...,service=...,scope=...` challenge; undefined when there is none. */
async function anonymousToken(challenge: string, signal: AbortSignal): Promise<string | undefined> {
  if (!/^Bearer\s/i.test(challenge)) return undefined;
  const params = Object.fromEntries(
    [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]?.toLowerCase() ?? '', m[2] ?? '']),
  );
  if (!params.realm?.startsWith('https://')) return undefined;
  const url = new URL(params.realm);
  if (params.service) url.searchParams.set('service', params.service);
  if (params.scope) url.searchParams.set('scope', params.scope);
  const response = await fetch(url, { signal });
  if (!response.ok) return undefined;
  const body = (await response.json()) as { token?: unknown; access_token?: unknown };
  const token = body.token ?? body.access_token;
  return typeof token === 'string' ? token : undefined;
}
