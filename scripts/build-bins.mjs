// Bundles the three bins (package.json "bin") with esbuild, over the files tsc wrote.
//
// The agent is one ES module (what it might import with `await import()` would go to
// dist/chunks/). It is a long-running service: how fast it starts matters little.
//
// The connector and the CLI start often (an AI client spawns the connector for each session,
// and the operator runs `mcp` for every command), and compiling their JavaScript is most of
// their start. Node 20 caches no compiled code for ES modules, so each of them is built into
// CommonJS: their split bundle (an entry file each, shared and load-on-first-use chunks under
// dist/bundle/) is written as `.cjs` files, and each bin file runs its entry with V8's code cache
// (core/compile-cache.ts).
//
// better-sqlite3 stays outside: it is native and finds its .node file relative to itself.
// @grpc/proto-loader too (see below); both are installed with the package.
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build, transform } from 'esbuild';

const root = new URL('../', import.meta.url);
const { bin } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
/** The bins run from a cached CommonJS bundle; the others are bundled as ES modules. */
const CACHED_BINS = new Set(['connector/main', 'connector/cli']);

const shared = {
  absWorkingDir: new URL('.', root).pathname,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Smaller source parses faster; names stay, so stack traces read the same.
  minifyWhitespace: true,
  minifySyntax: true,
  // grpc-js requires proto-loader (and protobufjs under it) only to describe its channelz and
  // ORCA services, which nothing here serves: left out, it stays out of the client's bundle.
  external: ['better-sqlite3', '@grpc/proto-loader'],
  logLevel: 'warning',
};

// One entry per bin, named by its path in dist without `.js`: `connector/main` → dist/connector/main.js.
const names = Object.values(bin).map((file) => file.replace(/^dist\//, '').replace(/\.js$/, ''));
const esmNames = names.filter((name) => !CACHED_BINS.has(name));

for (const dir of ['dist/chunks', 'dist/bundle'])
  rmSync(new URL(dir, root), { recursive: true, force: true });
await build({
  ...shared,
  entryPoints: Object.fromEntries(esmNames.map((name) => [name, `${name}.ts`])),
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  format: 'esm',
  // Bundled CommonJS packages call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);",
  },
});

// The connector and the CLI: one split build, each output file turned into CommonJS.
const cached = await build({
  ...shared,
  entryPoints: Object.fromEntries(
    names.filter((n) => CACHED_BINS.has(n)).map((name) => [name, `${name}.ts`]),
  ),
  chunkNames: 'bundle/[name]-[hash]',
  outExtension: { '.js': '.cjs' },
  splitting: true,
  format: 'esm',
  // No source maps: they would describe the ES module output, not the CommonJS files run.
  sourcemap: false,
  // CommonJS has no import.meta; each file's own URL stands in (see the banner below).
  define: { 'import.meta.url': '__bundleUrl' },
  metafile: true,
});
const outputs = Object.keys(cached.metafile.outputs);
const buildHash = createHash('sha256');
for (const file of outputs) {
  const { code } = await transform(readFileSync(new URL(file, root), 'utf8'), {
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // `import()` of a chunk becomes a require() of it, which runBundle serves from its cache.
    supported: { 'dynamic-import': false },
    minifyWhitespace: true,
    minifySyntax: true,
    banner: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;",
    logLevel: 'warning',
  });
  writeFileSync(new URL(file, root), code);
  buildHash.update(file).update(code);
}
// The loader too: it wraps each file before V8 compiles it, and V8 checks a cache against the
// wrapped source's length only.
buildHash.update(readFileSync(new URL('dist/core/compile-cache.js', root)));
const buildId = buildHash.digest('hex').slice(0, 16);
for (const name of names.filter((n) => CACHED_BINS.has(n))) {
  const base = name.split('/').at(-1);
  // tsc's map for the source it wrote there no longer describes the bin file.
  rmSync(new URL(`dist/${name}.js.map`, root), { force: true });
  writeFileSync(
    new URL(`dist/${name}.js`, root),
    [
      '#!/usr/bin/env node',
      `// Runs ${base}.cjs and the chunks it requires with V8's code cache: see core/compile-cache.ts.`,
      "import { runBundle } from '../core/compile-cache.js';",
      `runBundle(new URL('./${base}.cjs', import.meta.url), '${buildId}');`,
      '',
    ].join('\n'),
  );
}

// Bins are executable (tsc writes 0644), so they run without npm's link step.
for (const file of Object.values(bin)) chmodSync(new URL(file, root), 0o755);

// The tsc output beside the bins imports the generated validators, which are JavaScript.
mkdirSync(new URL('dist/gen', root), { recursive: true });
copyFileSync(new URL('gen/tool-validators.js', root), new URL('dist/gen/tool-validators.js', root));
