/**
 * `mcp push` and `mcp pull`: one file between this machine and a service's files directory on
 * its node, through push_file and pull_file. The operator names the local file anywhere; the
 * tools' own confinement to `[files] local_dir` is for calls a model makes, so here the file's
 * own directory stands in for it (the hard-link and link checks still apply).
 */
import { basename, dirname, posix, resolve } from 'node:path';
import type { Command } from 'commander';
import type { CallAnswer, CliContext } from './context.js';
import { UsageError } from './context.js';
import { nodeArg, printAnswer } from './lifecycle.js';

/** `service:path` (pull) or `service[:path]` (push). */
function parseRemote(remote: string, pathRequired: boolean): { service: string; path?: string } {
  const colon = remote.indexOf(':');
  const service = colon === -1 ? remote : remote.slice(0, colon);
  const path = colon === -1 ? undefined : remote.slice(colon + 1);
  if (service === '' || path === '' || (pathRequired && path === undefined)) {
    throw new UsageError(
      `'${remote}' is not ${pathRequired ? 'SERVICE:PATH' : 'SERVICE[:PATH]'}: for example web:conf/app.ini`,
    );
  }
  return path === undefined ? { service } : { service, path };
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('push')
    .description("upload a file into a service's files directory on its node")
    .argument('<file>', 'the local file')
    .argument('<target>', 'SERVICE[:PATH]; PATH defaults to the file name')
    .option('-m, --mode <octal>', 'file mode on the node, e.g. 640')
    .addHelpText(
      'after',
      `
Examples:
  mcp push ./app.ini web
  mcp push ./app.ini web:conf/app.ini --mode 640`,
    )
    .action(async (file: string, target: string, options: { mode?: string }, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const local = resolve(file);
      const { service, path = basename(local) } = parseRemote(target, false);
      const args: Record<string, unknown> = { service, path, localPath: basename(local), ...nodeArg(opts) };
      if (options.mode !== undefined) {
        if (!/^[0-7]{3,4}$/.test(options.mode))
          throw new UsageError(`--mode ${options.mode}: give octal digits, e.g. 640`);
        args.mode = Number.parseInt(options.mode, 8);
      }
      const bar = opts.json ? undefined : ctx.out.transfer(`push ${basename(local)}`);
      let answer: CallAnswer;
      const call = () =>
        ctx.withSession(
          opts,
          (s) =>
            s.call('push_file', args, {
              onProgress: (p) => p.total && bar?.update(Math.floor(p.progress), p.total),
            }),
          { localDir: dirname(local) },
        );
      try {
        answer = await call();
      } finally {
        bar?.stop();
      }
      printAnswer(ctx, opts, answer);
    });

  program
    .command('pull')
    .description("download a file from a service's files directory on its node")
    .argument('<source>', 'SERVICE:PATH')
    .argument('[file]', 'where to save it; defaults to the file name in the current directory')
    .addHelpText(
      'after',
      `
Examples:
  mcp pull web:conf/app.ini
  mcp pull web:logs/today.log ./today.log`,
    )
    .action(async (source: string, file: string | undefined, _options: unknown, cmd: Command) => {
      const opts = ctx.globals(cmd);
      const { service, path = '' } = parseRemote(source, true);
      const local = resolve(file ?? posix.basename(path));
      const bar = opts.json ? undefined : ctx.out.transfer(`pull ${posix.basename(path)}`);
      const call = () =>
        ctx.withSession(
          opts,
          (s) =>
            s.call(
              'pull_file',
              { service, path, localPath: basename(local), ...nodeArg(opts) },
              { onProgress: (p) => p.total && bar?.update(Math.floor(p.progress), p.total) },
            ),
          { localDir: dirname(local) },
        );
      let answer: CallAnswer;
      try {
        answer = await call();
      } finally {
        bar?.stop();
      }
      printAnswer(ctx, opts, answer);
    });
}
