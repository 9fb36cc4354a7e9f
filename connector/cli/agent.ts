/**
 * `mcp agent status | stop | logs [--lines N]`: the local setup's long-lived agent
 * (connector/local-agent.ts), for the person whose clients share it. These read and signal
 * the agent through its files in $MCP_HOME; none of them starts it.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { localHomeDir } from '../../core/local-home.js';
import { localAgentLogFile, localAgentStatus, stopLocalAgent } from '../local-agent.js';
import { type CliContext, ExitCode, UsageError } from './context.js';
import { uptime } from './observe.js';

const DEFAULT_LOG_LINES = 50;

export function register(program: Command, ctx: CliContext): void {
  const agent = program
    .command('agent')
    .description("the local setup's agent in $MCP_HOME: status, stop, logs")
    .addHelpText(
      'after',
      `
The local agent serves the single-node setup in $MCP_HOME (default ~/.local/state/mcp). The
first mcp command or connector without a config starts it; it keeps running for the next.

Examples:
  mcp agent status
  mcp agent logs --lines 200
  mcp agent stop`,
    );

  agent
    .command('status')
    .description('whether the local agent runs: pid, address, uptime, log file (exit 3 when it does not)')
    .action(async (_options: unknown, cmd: Command) => {
      const home = localHomeDir();
      const status = await localAgentStatus(home);
      if (ctx.globals(cmd).json) ctx.out.json({ home, ...status });
      else if (status.state === 'running') {
        const up =
          status.uptimeSeconds === undefined
            ? ''
            : `, up ${uptime(new Date(Date.now() - status.uptimeSeconds * 1000))}`;
        ctx.out.line(`running: pid ${status.pid} on ${status.address}${up} (since ${status.startedAt})`);
        ctx.out.line(`log: ${status.logFile}`);
      } else {
        const stale =
          status.state === 'stale' ? ` (agent.pid names pid ${status.pid ?? '?'}, which is gone)` : '';
        ctx.out.line(`${status.state}${stale}: the next mcp command or connector on ${home} starts it`);
        ctx.out.line(`log: ${status.logFile}`);
      }
      // As `systemctl status` for a unit that is not running.
      if (status.state !== 'running') ctx.raiseExitCode(ExitCode.denied);
    });

  agent
    .command('stop')
    .description('stop it (the next mcp command or connector starts it again)')
    .action(async (_options: unknown, cmd: Command) => {
      const home = localHomeDir();
      const stopped = await stopLocalAgent(home);
      if (ctx.globals(cmd).json) return ctx.out.json({ home, stopped });
      ctx.out.line(stopped ? `stopped the local agent of ${home}` : `no local agent was running for ${home}`);
    });

  agent
    .command('logs')
    .description(`the last lines of its log (default ${DEFAULT_LOG_LINES})`)
    .option('-n, --lines <n>', 'how many lines', String(DEFAULT_LOG_LINES))
    .action(async (options: { lines: string }) => {
      const lines = Number(options.lines);
      if (!/^\d+$/.test(options.lines) || !Number.isSafeInteger(lines) || lines < 1) {
        throw new UsageError(
          `--lines '${options.lines}' is not a positive whole number: for example --lines 100`,
        );
      }
      const home = localHomeDir();
      const file = localAgentLogFile(home);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        ctx.out.line(`no log yet at ${file}: the agent has not run for ${home}`);
        return;
      }
      ctx.out.line(text.trimEnd().split('\n').slice(-lines).join('\n'));
    });
}
