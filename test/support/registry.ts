/**
 * The temp registry of a test: a fresh directory, a real SQLite registry opened in it, and
 * one cleanup that closes every registry the test opened there and removes the directory.
 *
 *   let temp: TempRegistry;
 *   beforeEach(() => { temp = tempRegistry('mcp-audit-'); });
 *   afterEach(() => temp.cleanup());
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openRegistry, type Registry, type RegistryOptions } from '../../registry/db.js';

export interface TempRegistry {
  /** The temp directory; anything else the test writes can go here too. */
  readonly dir: string;
  /** `<dir>/registry.db`. */
  readonly file: string;
  /** The registry opened on `file`, or the last one `open()` opened there. */
  readonly registry: Registry;
  /** Opens a registry on `file` (or `at`); cleanup closes it if the test did not. */
  open(at?: string, options?: RegistryOptions): Registry;
  /** Closes what is still open and removes the directory. */
  cleanup(): void;
}

/** A temp directory with a registry in it; `open: false` leaves the database for the test to create. */
export function tempRegistry(prefix = 'mcp-registry-', options: { open?: boolean } = {}): TempRegistry {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, 'registry.db');
  const opened: Registry[] = [];
  let main: Registry | undefined;
  const temp: TempRegistry = {
    dir,
    file,
    get registry(): Registry {
      if (!main) throw new Error('tempRegistry: no registry is open on the temp file: call open() first');
      return main;
    },
    open(at = file, openOptions = {}) {
      const registry = openRegistry(at, openOptions);
      opened.push(registry);
      if (at === file && !openOptions.readonly) main = registry;
      return registry;
    },
    cleanup() {
      for (const registry of opened.splice(0)) if (registry.db.open) registry.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  if (options.open !== false) temp.open();
  return temp;
}

/** Opens the registry file at `at` read-only, hands it to `read`, and closes it. */
export function readRegistry<T>(at: string, read: (registry: Registry) => T): T {
  const registry = openRegistry(at, { readonly: true });
  try {
    return read(registry);
  } finally {
    registry.close();
  }
}
