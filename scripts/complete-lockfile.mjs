// Completes package-lock.json with the other platforms' optional binaries of Biome and buf.
//
// npm writes a lock entry only for packages whose metadata it can fetch; a registry mirror
// that carries only this platform's builds leaves the others out, and `npm ci` then refuses
// the lock as out of sync. The missing entries are written from the package names (os, cpu,
// libc): npm never fetches them on a platform they do not match. Run after `npm install`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const added = [];
for (const parent of ['node_modules/@biomejs/biome', 'node_modules/@bufbuild/buf']) {
  for (const [name, version] of Object.entries(lock.packages[parent]?.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (lock.packages[key]) continue;
    const m = /-(android|darwin|linux|win32)-(arm64|x64|armv7)(-musl)?$/.exec(name);
    if (!m) throw new Error(`cannot tell the platform of ${name}`);
    lock.packages[key] = {
      version,
      cpu: [m[2] === 'armv7' ? 'arm' : m[2]],
      dev: true,
      ...(m[3] ? { libc: ['musl'] } : {}),
      optional: true,
      os: [m[1]],
    };
    added.push(name);
  }
}
const [rootEntry, ...rest] = Object.entries(lock.packages);
lock.packages = Object.fromEntries([rootEntry, ...rest.sort(([a], [b]) => (a < b ? -1 : 1))]);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added.length ? `added ${added.join(', ')}` : 'package-lock.json is complete');
