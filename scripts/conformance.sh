#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, which needs
# Node 22: npx fetches node@22 from the npm registry) against the built connector over
# Streamable HTTP. Prints one "conformance: N passed, M failed" line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/connector/main.js ] || npm run build

SCENARIOS=(server-initialize ping tools-list logging-set-level dns-rebinding-protection
  server-sse-polling server-sse-multiple-streams)
work="$(mktemp -d)"
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
cat > "$work/connector.toml" <<TOML
services_dir = "$work/services"
[[nodes]]
name = "node1"
address = "127.0.0.1:1"
TOML

node dist/connector/main.js --config "$work/connector.toml" --http "127.0.0.1:$port" 2>"$work/connector.log" &
connector=$!
trap 'kill $connector 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done

passed=0
failed=0
for scenario in "${SCENARIOS[@]}"; do
  if out="$(npx -y -p node@22 -p @modelcontextprotocol/conformance@0.1.16 -- \
      conformance server --url "http://127.0.0.1:$port/mcp" --scenario "$scenario" 2>&1)"; then
    passed=$((passed + 1)); echo "ok   $scenario"
  else
    failed=$((failed + 1)); echo "FAIL $scenario"; echo "$out" | tail -30
  fi
done
echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
