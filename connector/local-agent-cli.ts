/**
 * `mcp agent status | stop | logs [--lines N]`: the local setup's long-lived agent
 * (local-agent.ts), for the person whose clients share it.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../core/errors.js';
import { localHomeDir } from '../core/local-home.js';
import { localAgentLogFile, localAgentStatus, stopLocalAgent } from './local-agent.js';

export const AGENT_USAGE = `Usage:
  mcp agent status            whether the local agent runs: pid, address, uptime, log file
  mcp agent stop              stop it (the next mcp command or connector starts it again)
  mcp agent logs [--lines N]  the last N lines of its log (default 50)

The local agent serves the single-node setup in $MCP_HOME (default ~/.local/state/mcp).
`;

function formatUptime(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

export async function runLocalAgentCommand(argv: readonly string[], env = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { lines: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [sub, ...extra] = positionals;
  if (values.help || !sub || extra.length > 0) {
    process.stdout.write(AGENT_USAGE);
    return values.help ? 0 : 64;
  }
  const home = localHomeDir(env);
  switch (sub) {
    case 'status': {
      const status = await localAgentStatus(home);
      if (status.state === 'running') {
        const uptime = status.uptimeSeconds === undefined ? '' : `, up ${formatUptime(status.uptimeSeconds)}`;
        process.stdout.write(
          `running: pid ${status.pid} on ${status.address}${uptime} (since ${status.startedAt})\nlog: ${status.logFile}\n`,
        );
        return 0;
      }
      const stale =
        status.state === 'stale' ? ` (agent.pid names pid ${status.pid ?? '?'}, which is gone)` : '';
      process.stdout.write(
        `${status.state}${stale}: the next mcp command or connector on ${home} starts it\nlog: ${status.logFile}\n`,
      );
      return 3; // as `systemctl status` for a unit that is not running
    }
    case 'stop': {
      const stopped = await stopLocalAgent(home);
      process.stdout.write(
        stopped ? `stopped the local agent of ${home}\n` : `no local agent was running for ${home}\n`,
      );
      return 0;
    }
    case 'logs': {
      const lines = values.lines === undefined ? 50 : Number(values.lines);
      if (!Number.isSafeInteger(lines) || lines < 1) {
        throw new InvalidArgumentError(
          `--lines '${values.lines}' is not a positive whole number: for example --lines 100`,
        );
      }
      const file = localAgentLogFile(home);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        process.stdout.write(`no log yet at ${file}: the agent has not run for ${home}\n`);
        return 0;
      }
      const kept = text.trimEnd().split('\n').slice(-lines);
      process.stdout.write(`${kept.join('\n')}\n`);
      return 0;
    }
    default:
      process.stdout.write(AGENT_USAGE);
      return 64;
  }
}
