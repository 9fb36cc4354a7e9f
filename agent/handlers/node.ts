/**
 * NodeStatus: the node as an operator sizing it up wants to see it. Counts come from the
 * registry (observed state as last recorded); disk is the filesystem holding the registry;
 * memory available is the kernel's MemAvailable estimate (what can be allocated without
 * swapping), not MemFree. The TLS certificate is read from the configured file on every call,
 * so a renewed file shows (the agent serves the new one after a restart) and expiry is visible
 * before clients start failing.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import type { DiskUsage, NodeStatusRequest, NodeStatusResponse } from '../../gen/mcp/v1/mcp.js';
import type { UnaryHandler } from '../server.js';
import type { ServiceContext } from './context.js';

/** `MemAvailable` from /proc/meminfo in bytes; undefined when the kernel does not report it. */
export function parseMemAvailable(meminfo: string): number | undefined {
  const match = /^MemAvailable:\s+(\d+)\s+kB$/m.exec(meminfo);
  return match ? Number(match[1]) * 1024 : undefined;
}

async function memoryAvailable(): Promise<number> {
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  return parseMemAvailable(meminfo) ?? os.freemem();
}

async function diskUsage(path: string): Promise<DiskUsage> {
  const stats = await statfs(path);
  return { path, totalBytes: stats.blocks * stats.bsize, availableBytes: stats.bavail * stats.bsize };
}

export interface ServedCertificate {
  tlsCertNotAfter: Date | undefined;
  tlsCertSubject: string;
  tlsCertSans: string[];
}

/** Subject, SANs and expiry of a PEM certificate; `subjectAltName` is `DNS:a, IP Address:b`. */
export function describeCertificate(pem: string | Buffer): ServedCertificate {
  const cert = new X509Certificate(pem);
  return {
    tlsCertNotAfter: new Date(cert.validTo),
    tlsCertSubject: cert.subject.split('\n').join(', '),
    tlsCertSans: (cert.subjectAltName ?? '')
      .split(', ')
      .map((san) => san.trim())
      .filter((san) => san.length > 0),
  };
}

/** Empty fields when the file cannot be read now: the status of the rest of the node still matters. */
async function servedCertificate(file: string): Promise<ServedCertificate> {
  try {
    return describeCertificate(await readFile(file));
  } catch {
    return { tlsCertNotAfter: undefined, tlsCertSubject: '', tlsCertSans: [] };
  }
}

export function nodeHandlers(sc: ServiceContext): {
  nodeStatus: UnaryHandler<NodeStatusRequest, NodeStatusResponse>;
} {
  const { deps } = sc;
  return {
    async nodeStatus() {
      const { registry, runtime, config } = deps;
      // A registry in memory (tests) has no directory: measure the configured one's parent instead.
      const database = registry.path === ':memory:' ? config.database : registry.path;
      const [runtimeVersion, disk, memoryAvailableBytes, certificate] = await Promise.all([
        runtime.version(),
        diskUsage(dirname(resolve(database))),
        memoryAvailable(),
        servedCertificate(config.server.tlsCert),
      ]);
      const components = registry.services.list().flatMap((s) => s.components);
      return {
        node: config.nodeName,
        runtime: runtime.kind,
        runtimeVersion,
        agentVersion: deps.agentVersion,
        services: registry.services.names().length,
        components: components.length,
        running: components.filter((c) => c.observedState === 'running').length,
        disk,
        memoryTotalBytes: os.totalmem(),
        memoryAvailableBytes,
        loadAverage: os.loadavg(),
        cpus: os.availableParallelism(),
        uptimeSeconds: Math.floor(os.uptime()),
        agentUptimeSeconds: Math.floor((Date.now() - deps.startedAt.getTime()) / 1000),
        ...certificate,
      };
    },
  };
}
