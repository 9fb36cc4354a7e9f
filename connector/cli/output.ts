/**
 * How the `mcp` CLI writes to a person or to a pipe. On a terminal: bordered tables, colour
 * (never with NO_COLOR) and live progress bars on stderr. Elsewhere: plain aligned columns and
 * one line per progress step, with no escape codes, so `mcp list | grep web` and logs read
 * cleanly. `--json` output never goes through here except for the final document.
 */
import { createRequire } from 'node:module';
import { styleText } from 'node:util';
import type CliProgress from 'cli-progress';
import type CliTable from 'cli-table3';
import { table as plainTable } from '../text-table.js';

/**
 * Bordered tables and bars are for a terminal only: their libraries (CommonJS) are required
 * when one is drawn, so piped output and scripts never load them.
 */
const requireOnTerminal = createRequire(import.meta.url);
const tableLibrary = () => requireOnTerminal('cli-table3') as typeof CliTable;
const progressLibrary = () => requireOnTerminal('cli-progress') as typeof CliProgress;

type Style = Parameters<typeof styleText>[0];

export interface Terminal {
  /** stdout is a terminal: tables get borders, colour is allowed. */
  readonly stdoutTty: boolean;
  /** stderr is a terminal: progress is drawn as bars. */
  readonly stderrTty: boolean;
  readonly noColor: boolean;
}

export function detectTerminal(env: NodeJS.ProcessEnv = process.env): Terminal {
  return {
    stdoutTty: process.stdout.isTTY === true,
    stderrTty: process.stderr.isTTY === true,
    // https://no-color.org: present and not empty disables colour.
    noColor: (env.NO_COLOR ?? '') !== '' || env.TERM === 'dumb',
  };
}

export class Output {
  constructor(readonly terminal: Terminal) {}

  get colour(): boolean {
    return this.terminal.stdoutTty && !this.terminal.noColor;
  }

  /** `text` in `style` when colour is on, else as it is. */
  paint(style: Style, text: string): string {
    // validateStream: false, because whether to colour is decided here, for both streams.
    return this.colour ? styleText(style, text, { validateStream: false }) : text;
  }

  line(text = ''): void {
    process.stdout.write(`${text}\n`);
  }

  /** A note for the person at the terminal, on stderr so stdout stays the result. */
  note(text: string): void {
    process.stderr.write(`${text}\n`);
  }

  warn(text: string): void {
    const painted =
      this.terminal.stderrTty && !this.terminal.noColor
        ? styleText('yellow', text, { validateStream: false })
        : text;
    process.stderr.write(`${painted}\n`);
  }

  json(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A table: bordered on a terminal, plain columns two spaces apart otherwise. */
  table(header: readonly string[], rows: readonly (readonly string[])[]): string {
    if (!this.terminal.stdoutTty) return plainTable(header, rows);
    const Table = tableLibrary();
    const t = new Table({
      head: header.map((h) => this.paint('bold', h)),
      // cli-table3 colours through its own library; colour is decided here instead.
      style: { head: [], border: [], compact: true },
    });
    for (const row of rows) t.push([...row]);
    return t.toString();
  }

  /** Progress of one file transfer, in bytes. */
  transfer(label: string): TransferProgressView {
    return this.terminal.stderrTty ? new TransferBar(label) : new TransferLines(label);
  }

  /** Progress of a deploy, one line or bar per component. */
  components(label: string, fractions: Readonly<Record<string, number>>): ComponentProgressView {
    return this.terminal.stderrTty ? new ComponentBars(label, fractions) : new ComponentLines(label);
  }
}

export interface TransferProgressView {
  update(bytes: number, total: number): void;
  stop(): void;
}

export interface ComponentProgressView {
  step(component: string, step: string, message: string): void;
  stop(): void;
}

/** Bytes in the largest unit that keeps the number at or above 1. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Bytes per second since `started`. */
function rate(bytes: number, started: number): string {
  const seconds = Math.max((performance.now() - started) / 1000, 0.001);
  return `${humanBytes(Math.round(bytes / seconds))}/s`;
}

/** What the push/pull bar and the deploy bars share: drawn on stderr, kept when done. */
const BAR_STYLE = {
  stream: process.stderr,
  barCompleteChar: '\u2588',
  barIncompleteChar: '\u2591',
  hideCursor: true,
  clearOnComplete: false,
};

class TransferBar implements TransferProgressView {
  private readonly bar: CliProgress.SingleBar;
  private readonly started = performance.now();
  private begun = false;

  constructor(private readonly label: string) {
    const cliProgress = progressLibrary();
    this.bar = new cliProgress.SingleBar(
      {
        ...BAR_STYLE,
        format: '{label} {bar} {percentage}% | {done} of {size} | {speed}',
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(bytes: number, total: number): void {
    const payload = {
      label: this.label,
      done: humanBytes(bytes),
      size: humanBytes(total),
      speed: rate(bytes, this.started),
    };
    if (!this.begun) {
      this.begun = true;
      this.bar.start(total, bytes, payload);
    } else {
      this.bar.setTotal(total);
      this.bar.update(bytes, payload);
    }
  }

  stop(): void {
    if (this.begun) this.bar.stop();
  }
}

class TransferLines implements TransferProgressView {
  private readonly started = performance.now();

  constructor(private readonly label: string) {}

  update(bytes: number, total: number): void {
    process.stderr.write(`${this.label}: ${bytes} of ${total} bytes (${rate(bytes, this.started)})\n`);
  }

  stop(): void {}
}

class ComponentBars implements ComponentProgressView {
  private readonly multi: CliProgress.MultiBar;
  private readonly bars = new Map<string, CliProgress.SingleBar>();

  constructor(
    private readonly label: string,
    private readonly fractions: Readonly<Record<string, number>>,
  ) {
    const cliProgress = progressLibrary();
    this.multi = new cliProgress.MultiBar(
      {
        ...BAR_STYLE,
        format: '{component} {bar} {step}: {message}',
      },
      cliProgress.Presets.shades_classic,
    );
  }

  step(component: string, step: string, message: string): void {
    const value = step === 'done' || step === 'failed' ? 100 : Math.round((this.fractions[step] ?? 0) * 100);
    const payload = { component: `${this.label}/${component}`, step, message };
    const bar = this.bars.get(component);
    if (bar) bar.update(value, payload);
    else this.bars.set(component, this.multi.create(100, value, payload));
  }

  stop(): void {
    this.multi.stop();
  }
}

class ComponentLines implements ComponentProgressView {
  constructor(private readonly label: string) {}

  step(component: string, step: string, message: string): void {
    process.stderr.write(`${this.label}/${component}: ${step}: ${message}\n`);
  }

  stop(): void {}
}
