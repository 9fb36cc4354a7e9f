/**
 * Where the local single-node setup keeps its state (connector/local-fleet.ts). Apart from it,
 * so the bins decide whether to use that setup without loading the agent that runs it.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function localFleetHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.MCP_HOME || join(env.HOME || homedir(), '.local', 'state', 'mcp');
}
