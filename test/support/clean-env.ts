/**
 * Vitest setup file: removes every `MCP_*` variable from the test process before a test file
 * loads.
 *
 * Why here rather than in each test: the programs read their settings from the environment
 * by default (`MCP_AGENT_*` overrides in agent/config.ts, `MCP_*` in connector/config.ts,
 * `MCP_HOME`, `MCP_TOKEN`, `MCP_LOG_LEVEL`, ...), and the README invites users to export
 * them. A test starts an agent or a connector on the config it wrote, and a monitor test
 * compares the alert command's MCP_* environment exactly; with the user's variables leaking
 * in, a test would run against /etc/mcp or the user's own fleet home instead. Children the
 * tests spawn inherit this cleaned environment. Tests of the overrides themselves pass an
 * explicit `env` to the parser, so they do not depend on this process's environment.
 */
for (const name of Object.keys(process.env)) {
  if (name.startsWith('MCP_')) delete process.env[name];
}
