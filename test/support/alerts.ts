/**
 * The monitor's alert command in tests: a shell script that appends its MCP_* environment to a
 * file, one block per alert, and a reader that turns the file back into one record per alert.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface AlertRecorder {
  /** argv for `alert_command`. */
  command: string[];
  /** The alerts received so far, each as its MCP_* variables. */
  alerts(): Record<string, string>[];
}

export function alertRecorder(dir: string): AlertRecorder {
  const file = path.join(dir, 'alerts.log');
  const script = path.join(dir, 'alert.sh');
  fs.writeFileSync(script, '#!/bin/sh\nenv | grep "^MCP_" | sort >> "$1"\necho --- >> "$1"\n', {
    mode: 0o755,
  });
  return {
    command: ['/bin/sh', script, file],
    alerts: () => {
      if (!fs.existsSync(file)) return [];
      return fs
        .readFileSync(file, 'utf8')
        .split('---\n')
        .filter((block) => block.trim() !== '')
        .map((block) =>
          Object.fromEntries(
            block
              .trim()
              .split('\n')
              .map((line) => line.split(/=(.*)/s).slice(0, 2)),
          ),
        );
    },
  };
}
