/** The README's quick start must stay runnable: its JSON parses and names the package's bin. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  bin: Record<string, string>;
};

describe('README quick start', () => {
  it('gives a Claude Desktop config that parses and starts mcp-connector with npx', () => {
    const blocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    expect(blocks.length).toBeGreaterThan(0);
    const config = JSON.parse(blocks[0] ?? '') as {
      mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }>;
    };
    const server = config.mcpServers.mcp;
    expect(server?.command).toBe('npx');
    expect(server?.args.at(-1)).toBe('mcp-connector');
    expect(server?.args).toContain('--package');
    expect(Object.keys(server?.env ?? {})).toEqual(['MCP_CONFIG']);
    expect(pkg.bin['mcp-connector']).toBe('dist/connector/main.js');
  });

  it('gives a Claude Code command that starts the same bin', () => {
    const line = readme.split('\n').find((l) => l.startsWith('claude mcp add'));
    expect(line).toMatch(/^claude mcp add mcp -- npx -y --package \S+ mcp-connector$/);
  });

  it('shows the two commands, install-and-run and test', () => {
    expect(readme).toContain('npm ci && npm run build && node dist/connector/main.js');
    expect(readme).toMatch(/```sh\nnpm test\n```/);
  });
});
