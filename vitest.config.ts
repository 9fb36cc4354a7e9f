import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A user's exported MCP_* settings must not reach the agents and connectors the tests start.
    setupFiles: ['test/support/clean-env.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests share one podman and one CPU pair; running files one at a time keeps them honest.
    fileParallelism: false,
    pool: 'forks',
  },
});
