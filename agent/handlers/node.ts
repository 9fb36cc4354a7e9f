/**
 * NodeStatus: the node as an operator sizing it up wants to see it. Counts come from the
 * registry (observed state as last recorded); disk is the filesystem holding the registry;
 * memory available is the kernel's MemAvailable estimate (what can be allocated without
 * swapping), not MemFree.
 */
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

export function nodeHandlers(sc: ServiceContext): {
  nodeStatus: UnaryHandler<NodeStatusRequest, NodeStatusResponse>;
} {
  const { deps } = sc;
  return {
    async nodeStatus() {
      const { registry, runtime, config } = deps;
      // A registry in memory (tests) has no directory: measure the configured one's parent instead.
      const database = registry.path === ':memory:' ? config.database : registry.path;
      const [runtimeVersion, disk, memoryAvailableBytes] = await Promise.all([
        runtime.version(),
        diskUsage(dirname(resolve(database))),
        memoryAvailable(),
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
      };
    },
  };
}
