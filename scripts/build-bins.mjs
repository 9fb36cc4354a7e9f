// Bundles the three bins (package.json "bin") with esbuild, over the files tsc wrote, so a bin
// loads a few files instead of hundreds of modules. Code that a bin imports with `await import()`
// (the agent client and codecs behind the connector's first tool call, HTTP mode, the local
// setup's agent) goes into shared chunks under dist/chunks/, loaded only when reached.
// better-sqlite3 stays outside: it is native and finds its .node file relative to itself.
// @grpc/proto-loader too (see below); both are installed with the package.
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url);
const { bin } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));

// One entry per bin, named by its path in dist without `.js`: `connector/main` → dist/connector/main.js.
const entryPoints = Object.fromEntries(
  Object.values(bin).map((file) => {
    const name = file.replace(/^dist\//, '').replace(/\.js$/, '');
    return [name, `${name}.ts`];
  }),
);

rmSync(new URL('dist/chunks', root), { recursive: true, force: true });
await build({
  absWorkingDir: new URL('.', root).pathname,
  entryPoints,
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Smaller source parses faster; names stay, so stack traces read the same.
  minifyWhitespace: true,
  minifySyntax: true,
  // grpc-js requires proto-loader (and protobufjs under it) only to describe its channelz and
  // ORCA services, which nothing here serves: left out, it stays out of the client's chunk.
  external: ['better-sqlite3', '@grpc/proto-loader'],
  // Bundled CommonJS packages call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

// The tsc output beside the bins imports the generated validators, which are JavaScript.
mkdirSync(new URL('dist/gen', root), { recursive: true });
copyFileSync(new URL('gen/tool-validators.js', root), new URL('dist/gen/tool-validators.js', root));
