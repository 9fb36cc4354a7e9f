#!/usr/bin/env bash
# Installs (or upgrades) mcp-agent on this node from a BUILT checkout (`npm ci && npm run build`;
# an unbuilt or stale checkout is refused before anything is touched).
#
#   deploy/install.sh [--root DIR] [--node-modules DIR]
#
# Layout:
#   /opt/mcp/releases/<version>-<content hash>/   one release: dist, node_modules (production
#                                                 only), docs, deploy; never changed once staged
#   /opt/mcp/current -> releases/<...>             swapped atomically (rename) when a release is
#                                                 complete and its smoke test passed
#   /usr/local/bin/mcp-agent -> /opt/mcp/current/dist/agent/main.js
#   /usr/local/bin/mcp-alert -> /opt/mcp/current/deploy/mcp-alert   (unless you put your own there)
#   /etc/systemd/system/mcp-agent.service, mcp-agent-backup.service, mcp-agent-backup.timer
#   /etc/mcp-agent/ (config, never overwritten), /var/lib/mcp-agent/ (registry, backups: kept)
#
# A failure at any step leaves the current release and its service as they were. Running it
# again for the same build changes nothing and says so. The previous release stays (for a
# rollback, see RUNBOOK.md); older ones are removed.
#
# Options:
#   --root DIR          install under DIR instead of / (an image or a test); no systemctl calls
#   --node-modules DIR  copy the production packages the package-lock names from DIR (an
#                       install for this Node version, e.g. the checkout's node_modules) instead
#                       of running `npm ci --omit=dev` in the release: for offline nodes and tests.
#                       better-sqlite3 is native: DIR must have been built for this node's Node.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
root=""
node_modules=""
die() {
  echo "install: $*" >&2
  exit 1
}
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$(cd "${2:?--root needs a directory}" && pwd)" || die "--root $2: no such directory"; shift 2 ;;
    --node-modules) node_modules="$(cd "${2:?--node-modules needs a directory}" && pwd -P)" || die "--node-modules $2: no such directory"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$root" = / ] && root=""

# ---- Preflight: nothing is written before these pass.
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root: the agent drives podman as root (or give --root DIR to stage an install)"
fi
command -v node >/dev/null || die "node (>= 20.19) is required: apt-get install nodejs"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  die "node $(node --version) is too old: the agent needs >= 20.19"
[ -f "$src/dist/agent/main.js" ] ||
  die "$src is not built (no dist/agent/main.js): run 'npm ci && npm run build' in it first; nothing was changed"
newer="$(cd "$src" && find agent core registry connector gen tools.generated.ts -name '*.ts' -newer dist/agent/main.js -print -quit 2>/dev/null || true)"
[ -z "$newer" ] ||
  die "$src/dist is older than its sources ($newer): run 'npm run build' first; nothing was changed"
for file in package.json package-lock.json RUNBOOK.md docs/ARCHITECTURE.md docs/security.md \
  deploy/mcp-alert deploy/examples/agent.toml deploy/systemd/mcp-agent.service \
  deploy/systemd/mcp-agent-backup.service deploy/systemd/mcp-agent-backup.timer; do
  [ -f "$src/$file" ] || die "$src/$file is missing: is this a complete checkout? nothing was changed"
done
if [ -n "$node_modules" ]; then
  [ -d "$node_modules/better-sqlite3" ] || die "--node-modules $node_modules holds no better-sqlite3: give an installed node_modules"
else
  command -v npm >/dev/null || die "npm is required to install the production packages (or give --node-modules DIR)"
fi
[ -n "$root" ] || command -v podman >/dev/null || echo "install: warning: podman is not installed (apt-get install podman runc)" >&2

version="$(node -p 'require(process.argv[1]).version' "$src/package.json")"
# The release's name carries a hash of everything it is made of: a rebuilt dist is a new release.
release_files=(dist docs deploy RUNBOOK.md package.json package-lock.json)
hash="$(cd "$src" && find "${release_files[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
name="$version-$hash"
opt="$root/opt/mcp"
release="$opt/releases/$name"
current_target="$(readlink "$opt/current" 2>/dev/null || true)"

# ---- Files outside the release: units, commands, directories. Returns via `changed`.
changed=()
put_file() { # mode source destination: install when missing or different
  if ! cmp -s "$2" "$3"; then
    install -D -m "$1" "$2" "$3"
    changed+=("${3#"$root"}")
  fi
}
put_link() { # target link: (re)point when different
  if [ "$(readlink "$2" 2>/dev/null || true)" != "$1" ]; then
    install -d "$(dirname "$2")"
    ln -sfn "$1" "$2"
    changed+=("${2#"$root"}")
  fi
}
install_system_files() {
  local units="$root/etc/systemd/system"
  for unit in mcp-agent.service mcp-agent-backup.service mcp-agent-backup.timer; do
    put_file 0644 "$src/deploy/systemd/$unit" "$units/$unit"
  done
  put_link /opt/mcp/current/dist/agent/main.js "$root/usr/local/bin/mcp-agent"
  # Your own alert command at this path is kept; a missing one becomes the shipped example.
  if [ ! -e "$root/usr/local/bin/mcp-alert" ] && [ ! -L "$root/usr/local/bin/mcp-alert" ]; then
    put_link /opt/mcp/current/deploy/mcp-alert "$root/usr/local/bin/mcp-alert"
  fi
  for dir in "$root/etc/mcp-agent" "$root/var/lib/mcp-agent"; do
    [ -d "$dir" ] || { install -d -m 0700 "$dir"; changed+=("${dir#"$root"}/"); }
  done
  put_file 0644 "$src/deploy/examples/agent.toml" "$root/etc/mcp-agent/agent.toml.example"
}

if [ "$current_target" = "releases/$name" ] && [ -f "$release/.complete" ]; then
  install_system_files
  if [ ${#changed[@]} -eq 0 ]; then
    echo "mcp $name is already installed and current: nothing to do"
  else
    echo "mcp $name is already current; restored: ${changed[*]}"
  fi
  exit 0
fi

# ---- Stage the release beside the current one.
install -d -m 0755 "$opt" "$opt/releases"
if [ -f "$release/.complete" ]; then
  echo "release $name is already staged (a previous install or rollback): switching to it"
else
  rm -rf "$release" # an incomplete leftover: never swapped to, safe to redo
  stage="$opt/releases/.staging-$name.$$"
  trap 'rm -rf "$stage"' EXIT
  echo "staging $name in $stage"
  install -d -m 0755 "$stage" "$stage/docs" "$stage/deploy"
  cp -a "$src/dist" "$src/package.json" "$src/package-lock.json" "$stage/"
  cp -a "$src/docs/." "$stage/docs/"
  cp -a "$src/RUNBOOK.md" "$stage/docs/RUNBOOK.md"
  cp -a "$src/deploy/systemd" "$src/deploy/examples" "$src/deploy/mcp-alert" "$src/deploy/install.sh" "$stage/deploy/"
  if [ -n "$node_modules" ]; then
    # Exactly the production packages of the lock (no dev tools), from the given install;
    # nested node_modules come along with their parent package.
    install -d "$stage/node_modules"
    node -e '
      const lock = require(process.argv[1]);
      for (const [path, entry] of Object.entries(lock.packages)) {
        const name = path.replace(/^node_modules\//, "");
        if (path && !entry.dev && !entry.link && !name.includes("/node_modules/")) console.log(name);
      }
    ' "$src/package-lock.json" | tar -C "$node_modules" -cf - -T - | tar -C "$stage/node_modules" -xf - ||
      die "copying the production packages from $node_modules failed; the current install is unchanged"
  else
    (cd "$stage" && npm ci --omit=dev --no-audit --no-fund)
  fi
  # Smoke test of the staged release: every module the agent imports loads, and the native
  # SQLite binding opens a database. A missing or broken file stops the install here.
  got="$(node "$stage/dist/agent/main.js" --version 2>&1)" ||
    die "the staged release does not start ($got); the current install is unchanged"
  [ "$got" = "$version" ] || die "the staged release reports version '$got', expected $version"
  (cd "$stage" && node -e 'new (require("better-sqlite3"))(":memory:").close()') ||
    die "better-sqlite3 does not load in the staged release (built for another Node?); the current install is unchanged"
  printf 'version=%s\nhash=%s\n' "$version" "$hash" >"$stage/.complete"
  mv -T "$stage" "$release"
  trap - EXIT
fi

# ---- Swap: one rename replaces the `current` link.
ln -sfn "releases/$name" "$opt/.current.new"
mv -T "$opt/.current.new" "$opt/current"
echo "current -> releases/$name${current_target:+ (was $current_target)}"

install_system_files
# The layout of installers before releases (/opt/mcp/dist, ...): the units no longer use it.
for legacy in dist node_modules package.json package-lock.json docs; do
  [ -e "$opt/$legacy" ] && [ ! -L "$opt/$legacy" ] && rm -rf "${opt:?}/$legacy" && echo "removed old layout: /opt/mcp/$legacy"
done
# Keep the current and the previous release (for a rollback); remove older ones.
previous="${current_target#releases/}"
for old in "$opt"/releases/*; do
  base="$(basename "$old")"
  [ "$base" = "$name" ] || [ "$base" = "$previous" ] || { rm -rf "$old"; echo "removed old release $base"; }
done

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now mcp-agent-backup.timer
  # An upgrade of a running agent restarts it on the new release; a stopped one stays stopped.
  systemctl try-restart mcp-agent.service
fi
echo "installed mcp $name under ${root:-/}"
if [ ! -f "$root/etc/mcp-agent/agent.toml" ]; then
  echo "next: mcp-agent init --node NAME --issuer URL --audience AUD ... (see RUNBOOK.md), then systemctl enable --now mcp-agent"
fi
