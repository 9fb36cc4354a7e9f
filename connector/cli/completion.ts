/**
 * `mcp completion bash|zsh`: a completion script generated from the commander tree, so a
 * command or option added to the CLI completes without anyone editing a script.
 */
import type { Command } from 'commander';
import { tools } from '../../gen/tool-catalog.js';
import { type CliContext, UsageError } from './context.js';

/** Each command path ('' for the program, 'service' for a group) with its words. */
function commandWords(program: Command): Map<string, string[]> {
  const words = new Map<string, string[]>();
  const visit = (cmd: Command, path: string) => {
    const subcommands = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    const own = [
      ...subcommands.flatMap((c) => [c.name(), ...c.aliases()]),
      ...cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => f !== undefined)),
      '--help',
    ];
    // The tool names are what `call` and `tools` take.
    if (path === 'call' || path === 'tools') own.push(...tools.map((t) => t.name));
    words.set(path, [...new Set(own)]);
    for (const c of subcommands) visit(c, path === '' ? c.name() : `${path} ${c.name()}`);
  };
  visit(program, '');
  return words;
}

function bashScript(program: Command): string {
  const words = commandWords(program);
  const globals = program.options.flatMap((o) => [o.long, o.short].filter(Boolean)).join(' ');
  const cases = [...words]
    .filter(([path]) => path !== '')
    .map(([path, list]) => `    "${path}") words="${list.join(' ')} ${globals}" ;;`)
    .join('\n');
  return `# mcp completion for bash: source <(mcp completion bash)
_mcp_complete() {
  local cur path="" w words i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  # The command path: the leading words that are commands, not options or values.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case "\${path:+$path }$w" in
${[...words.keys()]
  .filter((p) => p !== '')
  .map((p) => `      "${p}") path="${p}" ;;`)
  .join('\n')}
      *) break ;;
    esac
  done
  case "$path" in
    "") words="${words.get('')?.join(' ') ?? ''}" ;;
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _mcp_complete mcp
`;
}

function zshScript(program: Command): string {
  // zsh runs the bash function through bashcompinit: one generated source of truth.
  return `#compdef mcp
# mcp completion for zsh: source <(mcp completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashScript(program)}`;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText(
      'after',
      `
Examples:
  source <(mcp completion bash)          # in ~/.bashrc
  mcp completion zsh > ~/.zfunc/_mcp`,
    )
    .action((shell: string) => {
      if (shell === 'bash') ctx.out.line(bashScript(program));
      else if (shell === 'zsh') ctx.out.line(zshScript(program));
      else throw new UsageError(`completion ${shell}: give bash or zsh`);
    });
}
