/**
 * `mcp login`, `mcp logout`, `mcp whoami`: the operator's token for the agents, in the token
 * file the connector reads (`[auth] token_file`). With a `[login]` section, login signs in with
 * its flow (connector/login.ts); without one, or with --stdin, it stores a bearer token read
 * from stdin, as for a token issued elsewhere.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { FailedPreconditionError, McpError } from '../../core/errors.js';
import type { ConnectorConfig } from '../config.js';
import type { DeviceCodeStep, LoginPrompt, TokenIdentity } from '../login.js';
import { type CliContext, type GlobalOptions, UsageError } from './context.js';

/** One line of base64url / JWT characters, as an Authorization: Bearer value allows. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

interface TokenFileOption {
  tokenFile?: string;
}

/**
 * The connector config with --token-file in place of `[auth] token_file`. Without a config
 * file (the local setup, which needs no token) --token-file is the only place a token can go.
 */
async function accountConfig(
  ctx: CliContext,
  opts: GlobalOptions,
  tokenFile: string | undefined,
): Promise<Pick<ConnectorConfig, 'login' | 'auth' | 'configFile'>> {
  const source = await ctx.configSource(opts);
  if (source.localHome) {
    if (tokenFile === undefined) {
      throw new UsageError(
        `no connector config at ${source.configFile} (the local setup needs no token): give --config FILE or --token-file FILE`,
      );
    }
    return { configFile: source.configFile, auth: { tokenFile, tokenEnv: 'MCP_TOKEN' } };
  }
  const config = await (await import('../config.js')).loadConnectorConfig(source.configFile);
  return tokenFile === undefined ? config : { ...config, auth: { ...config.auth, tokenFile } };
}

/** All of stdin, as one token. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** The token from stdin into `file`, mode 0600 even when the file was there before. */
async function storeStdinToken(file: string): Promise<void> {
  const token = await readStdin();
  if (!BEARER_TOKEN.test(token)) {
    throw new UsageError('stdin does not hold a bearer token (one line of base64url/JWT characters)');
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Written aside and renamed: a connector reading the file never sees half a token.
  const aside = `${file}.${process.pid}.tmp`;
  await writeFile(aside, `${token}\n`, { mode: 0o600 });
  await chmod(aside, 0o600);
  await rename(aside, file);
}

/** Questions on the terminal through @clack/prompts (on stderr, so stdout stays the result). */
async function terminalPrompt(ctx: CliContext, signal: AbortSignal): Promise<LoginPrompt> {
  const clack = await import('@clack/prompts');
  return {
    async ask({ message, secret }) {
      const answer = secret
        ? await clack.password({ message, output: process.stderr, signal })
        : await clack.text({ message, output: process.stderr, signal });
      if (clack.isCancel(answer)) throw new McpError('ABORTED', 'login cancelled: run `mcp login` again');
      return answer;
    },
    showDeviceCode: (step) => showDeviceCode(ctx, step),
  };
}

/**
 * Answers read line by line from a stdin that is not a terminal (a script piping a user name
 * and password). When stdin runs out, the question names the config keys that answer it.
 */
function linePrompt(ctx: CliContext): LoginPrompt {
  // Opened on the first question: a flow that asks nothing leaves stdin alone.
  let lines: AsyncIterator<string> | undefined;
  return {
    async ask({ message }) {
      lines ??= createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();
      const next = await lines.next();
      if (next.done) {
        throw new FailedPreconditionError(
          `login asked "${message}" but stdin is not a terminal and has no more lines: pipe the answers in, or set username and password_file in [login] (or flow = "client_credentials" with client_secret_file) for unattended use`,
        );
      }
      return String(next.value).trim();
    },
    showDeviceCode: (step) => showDeviceCode(ctx, step),
  };
}

function showDeviceCode(ctx: CliContext, step: DeviceCodeStep): void {
  ctx.out.note(`Open ${step.verificationUri} in a browser and enter the code ${step.userCode}`);
  if (step.verificationUriComplete) ctx.out.note(`(or open ${step.verificationUriComplete})`);
  ctx.out.note(`The code expires at ${step.expiresAt.toISOString()}. Waiting for approval...`);
}

function identityLines(identity: TokenIdentity): string[] {
  const expiry =
    identity.expiresAt === undefined
      ? 'none'
      : `${identity.expiresAt.toISOString()}${identity.expired ? ' (expired)' : ''}`;
  return [
    `subject: ${identity.subject ?? (identity.kind === 'opaque' ? '(opaque token: not readable here)' : '-')}`,
    `roles:   ${identity.roles.length > 0 ? identity.roles.join(', ') : '-'}`,
    `issuer:  ${identity.issuer ?? '-'}`,
    `expires: ${expiry}`,
    `expired: ${identity.expired ? 'yes: run mcp login' : 'no'}`,
  ];
}

export function register(program: Command, ctx: CliContext): void {
  const tokenFileOption = [
    '--token-file <file>',
    'the token file (default [auth] token_file of the config)',
  ] as const;

  program
    .command('login')
    .description('sign in with the [login] flow of the config, or store a bearer token read from stdin')
    .option(...tokenFileOption)
    .option('--stdin', 'store a bearer token read from stdin even when the config has a [login] section')
    .addHelpText(
      'after',
      `
[login] flow = "device" shows a code to enter in a browser, "client_credentials" signs in as
the client (unattended), "mcias" asks for a user name and password (or reads username and
password_file from [login]). Without [login], the token is read from stdin. The token file is
written with mode 0600.

Examples:
  mcp login
  mcp login --json
  printf '%s' "$TOKEN" | mcp login --token-file ~/.config/mcp/token`,
    )
    .action(async (options: TokenFileOption & { stdin?: boolean }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const config = await accountConfig(ctx, opts, options.tokenFile);
      if (!config.login || options.stdin) {
        await storeStdinToken(config.auth.tokenFile);
        if (opts.json) return ctx.out.json({ flow: 'stdin', tokenFile: config.auth.tokenFile });
        return ctx.out.line(`token stored in ${config.auth.tokenFile}`);
      }
      const { login } = await import('../login.js');
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const prompt = process.stdin.isTTY ? await terminalPrompt(ctx, stop.signal) : linePrompt(ctx);
        const result = await login(config, { prompt, signal: stop.signal });
        if (opts.json) return ctx.out.json(result);
        ctx.out.line(`signed in (${result.flow}); token stored in ${result.tokenFile}`);
        for (const line of identityLines(result.identity)) ctx.out.line(line);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        // The line reader holds stdin open; the command is done with it.
        process.stdin.destroy();
      }
    });

  program
    .command('logout')
    .description('remove the stored token')
    .option(...tokenFileOption)
    .addHelpText('after', '\nExamples:\n  mcp logout')
    .action(async (options: TokenFileOption, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { logout } = await import('../login.js');
      const result = await logout(await accountConfig(ctx, opts, options.tokenFile));
      if (opts.json) return ctx.out.json(result);
      ctx.out.line(
        result.removed ? `removed ${result.tokenFile}` : `no token was stored in ${result.tokenFile}`,
      );
    });

  program
    .command('whoami')
    .description(
      'whom the stored token names: subject, roles, issuer, expiry (a JWT is decoded, not verified)',
    )
    .option(...tokenFileOption)
    .addHelpText('after', '\nExamples:\n  mcp whoami\n  mcp whoami --json')
    .action(async (options: TokenFileOption, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { whoami } = await import('../login.js');
      const identity = await whoami(await accountConfig(ctx, opts, options.tokenFile));
      if (opts.json) return ctx.out.json(identity);
      for (const line of identityLines(identity)) ctx.out.line(line);
      ctx.out.line(`token file: ${identity.tokenFile}`);
    });
}
