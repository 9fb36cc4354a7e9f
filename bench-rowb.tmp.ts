// Local profiling aid (not committed): row (b) only, connector and agent profiled.
import { signTestToken, startTestAgent } from './test/support/agent.js';
import { writeConnectorConfig, BUILT_CONNECTOR } from './test/support/connector.js';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
async function spawnStdioConnector(args: string[], env: Record<string, string>) {
  const pre = process.env.PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF_DIR}`] : [];
  const transport = new StdioClientTransport({ command: process.execPath, args: [...pre, BUILT_CONNECTOR, ...args], env: { PATH: process.env.PATH ?? '', ...env }, stderr: 'pipe' });
  const client = new Client({ name: 'prof', version: '1.0.0' });
  await client.connect(transport);
  return { client, close: () => client.close() };
}
import { summary, ms, timed } from './bench/stats.js';
const n = Number(process.argv[2] ?? 300);
const token = await signTestToken({ subject: 'bench', roles: ['admin'] });
const agent = await startTestAgent({ node: 'node1' });
const one = writeConnectorConfig([{ name: 'node1', address: agent.address, caPem: agent.caPem, serverName: 'localhost' }]);
const env: Record<string, string> = { MCP_TOKEN: token };
const conn = await spawnStdioConnector(['--config', one.configFile], env);
for (let i = 0; i < 20; i++) await conn.client.callTool({ name: 'list_services', arguments: { node: 'node1' } });
const r: number[] = [];
for (let i = 0; i < n; i++) r.push(await timed(() => conn.client.callTool({ name: 'list_services', arguments: { node: 'node1' } })));
const s = summary(r);
console.log('list_services p50', ms(s.p50), 'p90', ms(s.p90), 'p99', ms(s.p99));
await conn.close();
one.remove();
await agent.stop();
