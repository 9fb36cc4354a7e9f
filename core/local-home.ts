/**
 * Where the local single-node setup keeps its state, and its `agent.pid`. Both programs need
 * them: the connector and `mcp` create the setup there and find the running agent through the
 * pid file; `mcp-agent` finds its config there when no `--config` is given, and writes the pid
 * file once it listens.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$MCP_HOME`, else `~/.local/state/mcp`. */
export function localHomeDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MCP_HOME || join(env.HOME || homedir(), '.local', 'state', 'mcp');
}

/** The agent config of the local setup in `home`. */
export function localAgentConfigFile(home: string): string {
  return join(home, 'agent.toml');
}

/** What `agent.pid` holds: written by the agent once it listens, read by every client. */
export interface AgentPidRecord {
  pid: number;
  /** host:port the agent answers on. */
  address: string;
  /** RFC 3339. */
  startedAt: string;
  /** The agent's node name (`node_name` of the config it runs on); absent from older agents' records. */
  node?: string;
}

/** Writes the record whole (temp file, then rename), so a reader never sees half of it. */
export function writeAgentPidFile(file: string, record: AgentPidRecord): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

/** The record, or undefined when the file is missing or not one (then it is treated as stale). */
export function readAgentPidFile(file: string): AgentPidRecord | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<AgentPidRecord>;
    if (
      Number.isSafeInteger(value.pid) &&
      (value.pid as number) > 0 &&
      typeof value.address === 'string' &&
      typeof value.startedAt === 'string'
    ) {
      return {
        pid: value.pid as number,
        address: value.address,
        startedAt: value.startedAt,
        ...(typeof value.node === 'string' ? { node: value.node } : {}),
      };
    }
  } catch {
    // not JSON: treated like a missing record
  }
  return undefined;
}

/** Removes the pid file if it still names `pid` (a newer agent's record is left alone). */
export function removeAgentPidFile(file: string, pid: number): void {
  if (readAgentPidFile(file)?.pid === pid) rmSync(file, { force: true });
}
