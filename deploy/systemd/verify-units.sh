#!/usr/bin/env bash
# Checks the units as systemd would load them: `systemd-analyze verify` in a temporary root
# that holds the units where the installer puts them, the host's own units (for the targets
# they name), and an executable at /usr/local/bin/mcp-agent (the path ExecStart= names), so a
# missing or mistyped binary path, directive or dependency fails; then the sandbox scores
# (`systemd-analyze security --offline=yes`), which must stay at or below MAX_EXPOSURE.
# With --root DIR, checks an installed staging root instead (deploy/install.sh --root DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
max="${MAX_EXPOSURE:-5.0}"
units=(mcp-agent.service mcp-agent-backup.service mcp-agent-backup.timer)
root=""
[ "${1:-}" = --root ] && root="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "$root" ]; then
  root="$work/root"
  install -d "$root/etc/systemd/system" "$root/usr/local/bin"
  for unit in "${units[@]}"; do cp "$here/$unit" "$root/etc/systemd/system/"; done
  printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/mcp-agent"
  chmod 0755 "$root/usr/local/bin/mcp-agent"
fi
# verify --root looks for sysinit.target, basic.target ... inside the root: lend it the host's.
if [ ! -e "$root/usr/lib/systemd/system/sysinit.target" ]; then
  overlay="$work/overlay"
  install -d "$overlay/usr/lib/systemd" "$overlay/etc/systemd/system" "$overlay/usr/local/bin"
  cp -a /usr/lib/systemd/system "$overlay/usr/lib/systemd/"
  cp -a "$root/etc/systemd/system/." "$overlay/etc/systemd/system/"
  cp -a "$root/usr/local/bin/." "$overlay/usr/local/bin/"
  # The installed release, which /usr/local/bin/mcp-agent points into (hard links: no copy).
  if [ -d "$root/opt" ]; then cp -al "$root/opt" "$overlay/" 2>/dev/null || cp -a "$root/opt" "$overlay/"; fi
  root="$overlay"
fi
# verify exits 0 on an unknown or misspelt directive and only warns: treat any output as failure.
if ! out="$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1)" || [ -n "$out" ]; then
  echo "systemd-analyze verify failed:" >&2
  echo "$out" >&2
  exit 1
fi
echo "systemd-analyze verify: ${units[*]} OK"
status=0
for unit in mcp-agent.service mcp-agent-backup.service; do
  line="$(systemd-analyze security --offline=yes --root="$root" "$unit" 2>&1 | tail -n 1)"
  score="$(sed -n 's/.*exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$line")"
  if [ -z "$score" ]; then
    echo "$unit: no exposure score in: $line" >&2
    status=1
  elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    echo "$unit: exposure $score is above $max: a sandbox directive was loosened (see the unit's comments)" >&2
    status=1
  else
    echo "$unit: exposure $score (at most $max)"
  fi
done
exit "$status"
