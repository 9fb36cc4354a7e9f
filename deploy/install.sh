#!/usr/bin/env bash
# Installs mcp-agent on this node from a checkout: /opt/mcp, the systemd unit, and an
# example config to edit. Run as root from the checkout. Idempotent.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(id -u)" -eq 0 ] || { echo "run as root: the agent drives podman as root" >&2; exit 1; }
command -v node >/dev/null || { echo "node (>= 20.19) is required" >&2; exit 1; }
command -v podman >/dev/null || echo "warning: podman is not installed (apt-get install podman runc)" >&2

install -d -m 0755 /opt/mcp
cp -a "$src/package.json" "$src/package-lock.json" /opt/mcp/
(cd /opt/mcp && npm ci --omit=dev --no-audit --no-fund)
rm -rf /opt/mcp/dist && cp -a "$src/dist" /opt/mcp/dist
install -d -m 0700 /etc/mcp-agent /var/lib/mcp-agent
if [ ! -f /etc/mcp-agent/agent.toml ]; then
  install -m 0600 "$src/deploy/examples/agent.toml" /etc/mcp-agent/agent.toml
  echo "wrote /etc/mcp-agent/agent.toml: set node_name, TLS files and your issuer, then: systemctl enable --now mcp-agent"
fi
install -m 0644 "$src/deploy/systemd/mcp-agent.service" /etc/systemd/system/mcp-agent.service
systemctl daemon-reload 2>/dev/null || true
echo "installed to /opt/mcp; unit mcp-agent.service"
