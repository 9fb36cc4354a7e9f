/**
 * Plain columns two spaces apart, the last one unpadded: the text tables of tool results and
 * of the `mcp` CLI in a pipe. Apart from format.ts so the CLI loads it without the codecs.
 */
export type Row = readonly string[];

/** Columns padded to their widest cell, two spaces apart. */
export function table(header: Row, rows: readonly Row[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: Row) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
