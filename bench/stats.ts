/** Small statistics for benchmarks: percentiles over samples in milliseconds. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function summary(samples: number[]): { p50: number; p90: number; p99: number; mean: number } {
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { p50: percentile(samples, 50), p90: percentile(samples, 90), p99: percentile(samples, 99), mean };
}

export const ms = (n: number) => `${n.toFixed(n < 1 ? 3 : 2)} ms`;

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Environment line for a results table, so numbers carry their context. */
export function machine(): string {
  return `node ${process.version}, ${process.platform}/${process.arch}`;
}

/** Milliseconds `fn` takes. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Where `npm install --prefix /tmp/pms podman-mcp-server@0.0.15` puts the peer's bin. */
export const PODMAN_MCP_SERVER_BIN = '/tmp/pms/node_modules/.bin/podman-mcp-server';
