#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, which needs
# Node 22: npx fetches node@22 from the npm registry) against the built connector over
# Streamable HTTP, in both protocol eras: the 2025 scenarios with the released 0.1.16, the
# 2026-07-28 ones with the 0.2.0 pre-release (the first with that revision). Of its 2026
# scenarios, server-stateless passes 24 of 28 checks (the other 4 need the suite's own
# diagnostic tools) and caching needs resources and prompts, which this server does not have.
# Prints one "conformance: N passed, M failed" line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/connector/main.js ] || npm run build

SCENARIOS=(server-initialize ping tools-list logging-set-level dns-rebinding-protection
  server-sse-polling server-sse-multiple-streams)
MODERN_SCENARIOS=(tools-list dns-rebinding-protection server-sse-multiple-streams http-header-validation)
LEGACY_SUITE=@modelcontextprotocol/conformance@0.1.16
MODERN_SUITE=@modelcontextprotocol/conformance@0.2.0-alpha.12
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
run() { # label suite scenario [args...]
  local label="$1" suite="$2" scenario="$3"
  shift 3
  if out="$(npx -y -p node@22 -p "$suite" -- \
      conformance server --url "http://127.0.0.1:$port/mcp" --scenario "$scenario" "$@" 2>&1)"; then
    passed=$((passed + 1)); echo "ok   $label $scenario"
  else
    failed=$((failed + 1)); echo "FAIL $label $scenario"; echo "$out" | tail -30
  fi
}
for scenario in "${SCENARIOS[@]}"; do run 2025 "$LEGACY_SUITE" "$scenario"; done
for scenario in "${MODERN_SCENARIOS[@]}"; do
  run 2026-07-28 "$MODERN_SUITE" "$scenario" --spec-version 2026-07-28
done
echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
