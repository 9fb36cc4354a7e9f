#!/usr/bin/env bash
# The podman test bed: everything the integration tests need, installed and started from
# this file alone. Run as root (CI does). Idempotent: a second run checks, changes nothing
# and takes a second or two.
#
#   scripts/testbed.sh           install, configure, build images, start the registry, push
#   scripts/testbed.sh --check   exit non-zero, saying what is missing, unless all is ready
#   scripts/testbed.sh --docker          the above, plus docker (see "The docker engine" below)
#   scripts/testbed.sh --check --docker  check both
#   scripts/testbed.sh --stop-docker     stop the test bed's dockerd (CI does, at the end)
#   scripts/testbed.sh --ensure [--docker]  what `npm test` runs first: nothing when all is
#                                    ready, else the setup as root, else the command to run
#
# What it leaves behind:
#   /etc/containers/containers.conf.d/50-mcp-testbed.conf   runc, no default ulimits
#   /etc/containers/registries.conf.d/50-mcp-testbed.conf   127.0.0.1:5000 is insecure (plain HTTP)
#   localhost/bb:v1, localhost/bb:v2                         busybox images built from busybox-static
#   a docker-registry (distribution v2) on 127.0.0.1:5000, state in /var/lib/mcp-testbed
#   127.0.0.1:5000/bb:v1 and :v2 pushed to it
#
# Learned on Debian 12 with podman 4.3.1 (root, cgroups v1, no systemd inside CI containers):
# - crun fails ("cgroups in hybrid mode not supported"); runc works. Debian's podman already
#   picks runc when crun is not installed, but we pin it so installing crun later breaks nothing.
# - podman's default ulimits (RLIMIT_NPROC, "rlimit type 7") fail with EPERM in runc create:
#   `default_ulimits = []` fixes it.
# - podman 4.3 reads /etc/containers/containers.conf.d/*.conf drop-ins (after containers.conf),
#   so we never edit a file someone else owns.
# - `podman import` images have no Env: podman injects PATH, TERM=xterm, container=podman and
#   HOSTNAME into every container; `podman inspect` shows them in Config.Env.
# - busybox `sleep` as PID 1 ignores SIGTERM, so `podman stop` waits for its full timeout
#   (default 10 s) before SIGKILL. `--init` (catatonit) makes stop immediate.
# - Debian's docker-registry package ships a systemd unit on :5000 with htpasswd auth; where
#   systemd runs, it would take our port, so we stop and disable it.
set -euo pipefail

readonly STATE_DIR=/var/lib/mcp-testbed
readonly REGISTRY_ADDR=127.0.0.1:5000
readonly REGISTRY_CONFIG=$STATE_DIR/registry.yml
readonly REGISTRY_PIDFILE=$STATE_DIR/registry.pid
readonly REGISTRY_LOG=$STATE_DIR/registry.log
readonly CONTAINERS_DROPIN=/etc/containers/containers.conf.d/50-mcp-testbed.conf
readonly REGISTRIES_DROPIN=/etc/containers/registries.conf.d/50-mcp-testbed.conf
readonly PACKAGES=(podman runc docker-registry busybox-static catatonit uidmap curl nftables)
readonly TAGS=(v1 v2)
# Bump when the image recipe changes: images with another revision are rebuilt and re-pushed.
readonly IMAGE_REVISION=1
readonly BUSYBOX_APPLETS=(sh ash sleep httpd cat echo ls env id true false wget ps kill printf
  mkdir rm touch test grep hostname pwd uname nc date head tail sed)

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: %s\n' "$*" >&2; exit 1; }

registry_answers() { curl -sf -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; }

manifest_exists() { # repo tag
  curl -sf -o /dev/null --max-time 5 -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_ADDR/v2/$1/manifests/$2"
}

image_revision() { # image -> revision label, empty when the image is missing
  podman image inspect --format '{{index .Labels "org.mcp.testbed.revision"}}' "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------- --check

check() {
  local missing=()
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("package $pkg")
  done
  local file
  for file in "$CONTAINERS_DROPIN" "$REGISTRIES_DROPIN"; do
    [[ -f "$file" ]] || missing+=("$file")
  done
  if command -v podman >/dev/null; then
    local tag
    for tag in "${TAGS[@]}"; do
      [[ "$(image_revision "localhost/bb:$tag")" == "$IMAGE_REVISION" ]] || missing+=("image localhost/bb:$tag")
    done
    if [[ ${#missing[@]} -eq 0 ]] &&
      ! out=$(timeout 60 podman run --rm localhost/bb:v1 /bin/echo ok 2>&1); then
      missing+=("a working 'podman run' ($out)")
    fi
  fi
  if ! command -v curl >/dev/null; then
    :
  elif ! registry_answers; then
    missing+=("the registry on http://$REGISTRY_ADDR/v2/")
  else
    for tag in "${TAGS[@]}"; do
      manifest_exists bb "$tag" || missing+=("image $REGISTRY_ADDR/bb:$tag in the registry")
    done
  fi
  [[ -z ${WITH_DOCKER:-} ]] || check_docker
  if [[ ${#missing[@]} -gt 0 ]]; then
    printf 'testbed: not ready, missing:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    printf 'testbed: run scripts/testbed.sh%s as root\n' "${WITH_DOCKER:+ --docker}" >&2
    exit 1
  fi
  echo "testbed: ready (podman $(podman version --format '{{.Client.Version}}')${WITH_DOCKER:+, docker $(docker_cli version --format '{{.Server.Version}}')}, registry $REGISTRY_ADDR, bb:v1 bb:v2)"
}

# ---------------------------------------------------------------- setup steps

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # With recommends, as verified on these machines: netavark (the network stack that publishes
  # ports) is only a recommendation of containers-common.
  apt-get install -y -qq "${missing[@]}" >/dev/null
  CHANGED+=("packages")
}

disable_packaged_registry() {
  command -v systemctl >/dev/null && [[ -d /run/systemd/system ]] || return 0
  if systemctl is-enabled --quiet docker-registry 2>/dev/null || systemctl is-active --quiet docker-registry 2>/dev/null; then
    log "stopping Debian's docker-registry.service (it would hold :5000 with htpasswd auth)"
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
}

# Writes $2 to $1 only when the content differs, so a second run changes nothing.
write_file() {
  local path=$1 content=$2
  if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then return 0; fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path"
  log "wrote $path"
  CHANGED+=("$path")
}

configure_podman() {
  write_file "$CONTAINERS_DROPIN" '# Written by mcp scripts/testbed.sh.
# crun fails on cgroups hybrid mode here; podman default ulimits fail with EPERM.
[containers]
default_ulimits = []

[engine]
runtime = "runc"'
  write_file "$REGISTRIES_DROPIN" '# Written by mcp scripts/testbed.sh: the test registry speaks plain HTTP.
[[registry]]
location = "'"$REGISTRY_ADDR"'"
insecure = true'
}

build_image() { # tag
  local tag=$1
  local work=$WORK_DIR/$tag root=$WORK_DIR/$tag/rootfs
  mkdir -p "$root"/{bin,etc,tmp,www,root}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in "${BUSYBOX_APPLETS[@]}"; do ln -s busybox "$root/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'bb %s\n' "$tag" >"$root/www/index.html"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/bb.tar" .
  # The image sets one variable of its own so tests can see that inspect drops image env.
  podman import --quiet \
    --change 'CMD ["/bin/sleep","3600"]' \
    --change "ENV MCP_TESTBED_IMAGE=bb:$tag" \
    --change "LABEL org.mcp.testbed.revision=$IMAGE_REVISION" \
    "$work/bb.tar" "localhost/bb:$tag" >/dev/null
  log "built localhost/bb:$tag"
  CHANGED+=("localhost/bb:$tag")
  REBUILT+=("$tag")
}

build_images() {
  # busybox-static installs /bin/busybox; check it is the static one (the image has no libc).
  [[ -x /bin/busybox ]] || die "/bin/busybox missing: is busybox-static installed?"
  if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is dynamically linked: install busybox-static"; fi
  local tag
  for tag in "${TAGS[@]}"; do
    [[ "$(image_revision "localhost/bb:$tag")" == "$IMAGE_REVISION" ]] || build_image "$tag"
  done
}

start_registry() {
  mkdir -p "$STATE_DIR/registry"
  write_file "$REGISTRY_CONFIG" "# Written by mcp scripts/testbed.sh.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR"
  registry_answers && return 0
  if curl -s -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; then
    die "something else answers on $REGISTRY_ADDR without 200 on /v2/ (an auth-protected registry?): stop it"
  fi
  log "starting docker-registry on $REGISTRY_ADDR (log $REGISTRY_LOG)"
  # setsid + nohup: the registry outlives this script and the CI step's process group.
  setsid nohup docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 </dev/null &
  echo $! >"$REGISTRY_PIDFILE"
  local _
  for _ in $(seq 50); do
    registry_answers && { CHANGED+=("registry started"); return 0; }
    kill -0 "$(cat "$REGISTRY_PIDFILE")" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 20 "$REGISTRY_LOG" >&2 || true
  die "docker-registry did not answer on http://$REGISTRY_ADDR/v2/ (log above, $REGISTRY_LOG)"
}

push_images() {
  local tag
  for tag in "${TAGS[@]}"; do
    if [[ " ${REBUILT[*]} " == *" $tag "* ]] || ! manifest_exists bb "$tag"; then
      podman push --quiet --tls-verify=false "localhost/bb:$tag" "docker://$REGISTRY_ADDR/bb:$tag"
      log "pushed $REGISTRY_ADDR/bb:$tag"
      CHANGED+=("pushed bb:$tag")
    fi
  done
}

smoke_test() {
  local out
  out=$(timeout 60 podman run --rm localhost/bb:v1 /bin/cat /www/index.html 2>&1) ||
    die "podman run failed: $out"
  [[ "$out" == "bb v1" ]] || die "podman run printed '$out', expected 'bb v1'"
}

# ---------------------------------------------------------------- The docker engine
#
# Agents may drive docker instead of podman (`container_runtime = "docker"`). The test bed runs
# Debian's docker.io (Engine 20.10) as its own dockerd, beside podman and out of its way:
#   socket   unix:///run/mcp-testbed/docker.sock (tests and agents find it through DOCKER_HOST)
#   state    /var/lib/mcp-testbed/docker, exec root /run/mcp-testbed/docker-exec, log
#            /var/lib/mcp-testbed/dockerd.log, config /var/lib/mcp-testbed/daemon.json (empty:
#            /etc/docker/daemon.json is not read)
#   network  --iptables=false --ip6tables=false: no firewall rules, so podman's netavark rules
#            and the FORWARD policy stay as they are; --bridge=none: no docker0. Containers
#            that publish ports join the bridge network `mcp-testbed` (interface mcp-docker0,
#            172.30.213.0/24, away from podman's 10.88/16 and the 10.89/16 it hands out):
#            without iptables, docker publishes through docker-proxy, which is enough for
#            127.0.0.1. The default network has no interface at all under --bridge=none.
#   images   127.0.0.1:5000/bb:v1 and :v2 pulled from the test registry (docker treats
#            127.0.0.0/8 registries as insecure by default, no config needed).
# Learned here: `podman save a b | docker load` of two tags gives one image with both tags
# (podman writes a single-image docker-archive): pulling from the registry avoids it. docker.io
# ships docker-init (tini), so `--init` works. Where systemd runs, installing docker.io would
# start docker.service with iptables and docker0: policy-rc.d keeps it from starting, and we
# disable it.

readonly DOCKER_PACKAGES=(docker.io)
readonly DOCKER_RUN_DIR=/run/mcp-testbed
readonly DOCKER_SOCKET=$DOCKER_RUN_DIR/docker.sock
readonly DOCKER_PIDFILE=$DOCKER_RUN_DIR/docker.pid
readonly DOCKER_LOG=$STATE_DIR/dockerd.log
readonly DOCKER_CONFIG=$STATE_DIR/daemon.json
readonly DOCKER_NETWORK=mcp-testbed
readonly DOCKER_NETWORK_SUBNET=172.30.213.0/24
readonly DOCKER_NETWORK_BRIDGE=mcp-docker0
# The CLI by path: another docker CLI may come first on PATH (see test/support/engines.ts).
readonly DOCKER_CLI=/usr/bin/docker

docker_cli() { DOCKER_HOST=unix://$DOCKER_SOCKET "$DOCKER_CLI" "$@"; }
dockerd_answers() { [[ -S $DOCKER_SOCKET ]] && docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; }

check_docker() { # appends to the caller's `missing`
  local pkg tag
  for pkg in "${DOCKER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("package $pkg")
  done
  if ! dockerd_answers; then
    missing+=("a dockerd answering on unix://$DOCKER_SOCKET")
    return 0
  fi
  docker_cli network inspect "$DOCKER_NETWORK" >/dev/null 2>&1 || missing+=("docker network $DOCKER_NETWORK")
  for tag in "${TAGS[@]}"; do
    docker_cli image inspect "$REGISTRY_ADDR/bb:$tag" >/dev/null 2>&1 || missing+=("docker image $REGISTRY_ADDR/bb:$tag")
  done
}

install_docker() {
  local missing=() pkg
  for pkg in "${DOCKER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package's services must not start (docker.service would add iptables rules and
  # docker0): a policy-rc.d that says 101 ("action forbidden") for the install, unless the
  # machine has its own.
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# mcp scripts/testbed.sh, during apt-get install only\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  apt-get update -qq
  # Without recommends: they pull in git, xz and cgroupfs-mount, none needed here.
  local status=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  [[ -z $own_policy ]] || rm -f "$policy"
  [[ $status -eq 0 ]] || die "apt-get install ${missing[*]} failed ($status)"
  CHANGED+=("packages ${missing[*]}")
}

disable_packaged_docker() {
  command -v systemctl >/dev/null && [[ -d /run/systemd/system ]] || return 0
  local unit
  for unit in docker.socket docker.service; do
    if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
      log "stopping and disabling $unit (the test bed runs its own dockerd)"
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
}

start_dockerd() {
  dockerd_answers && return 0
  mkdir -p "$DOCKER_RUN_DIR" "$STATE_DIR/docker"
  write_file "$DOCKER_CONFIG" '{}'
  if [[ -f $DOCKER_PIDFILE ]] && kill -0 "$(cat "$DOCKER_PIDFILE")" 2>/dev/null; then
    log "dockerd (pid $(cat "$DOCKER_PIDFILE")) runs but does not answer yet: waiting"
  else
    log "starting dockerd on unix://$DOCKER_SOCKET (log $DOCKER_LOG)"
    # setsid + nohup: dockerd outlives this script and the CI step's process group.
    setsid nohup dockerd \
      --host "unix://$DOCKER_SOCKET" \
      --config-file "$DOCKER_CONFIG" \
      --data-root "$STATE_DIR/docker" \
      --exec-root "$DOCKER_RUN_DIR/docker-exec" \
      --pidfile "$DOCKER_PIDFILE" \
      --iptables=false --ip6tables=false --ip-masq=false \
      --bridge=none \
      >>"$DOCKER_LOG" 2>&1 </dev/null &
    CHANGED+=("dockerd started")
  fi
  local _
  for _ in $(seq 150); do
    dockerd_answers && return 0
    sleep 0.2
  done
  tail -n 30 "$DOCKER_LOG" >&2 || true
  die "dockerd did not answer on unix://$DOCKER_SOCKET in 30 s (log above, $DOCKER_LOG)"
}

configure_docker() {
  docker_cli network inspect "$DOCKER_NETWORK" >/dev/null 2>&1 && return 0
  docker_cli network create --driver bridge --subnet "$DOCKER_NETWORK_SUBNET" \
    --opt "com.docker.network.bridge.name=$DOCKER_NETWORK_BRIDGE" "$DOCKER_NETWORK" >/dev/null
  log "created docker network $DOCKER_NETWORK ($DOCKER_NETWORK_SUBNET on $DOCKER_NETWORK_BRIDGE)"
  CHANGED+=("docker network $DOCKER_NETWORK")
}

pull_docker_images() {
  local tag image
  for tag in "${TAGS[@]}"; do
    image=$REGISTRY_ADDR/bb:$tag
    # Pulled again when the registry has a rebuilt image (same tag, other revision).
    if [[ " ${REBUILT[*]} " == *" $tag "* ]] || ! docker_cli image inspect "$image" >/dev/null 2>&1; then
      docker_cli pull --quiet "$image" >/dev/null
      log "docker pulled $image"
      CHANGED+=("docker pulled bb:$tag")
    fi
  done
}

smoke_test_docker() {
  local out
  out=$(timeout 60 "$DOCKER_CLI" --host "unix://$DOCKER_SOCKET" run --rm --network="$DOCKER_NETWORK" \
    "$REGISTRY_ADDR/bb:v1" /bin/cat /www/index.html 2>&1) || die "docker run failed: $out"
  [[ "$out" == "bb v1" ]] || die "docker run printed '$out', expected 'bb v1'"
}

stop_dockerd() {
  local pid
  if [[ ! -f $DOCKER_PIDFILE ]] || ! pid=$(cat "$DOCKER_PIDFILE") || ! kill -0 "$pid" 2>/dev/null; then
    echo "testbed: dockerd is not running"
    return 0
  fi
  # SIGTERM: dockerd stops its containers (up to their stop timeout) and its containerd.
  kill -TERM "$pid"
  local _
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || { echo "testbed: dockerd (pid $pid) stopped"; return 0; }
    sleep 0.2
  done
  log "dockerd (pid $pid) did not stop in 60 s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

setup_docker() {
  install_docker
  disable_packaged_docker
  start_dockerd
  configure_docker
  pull_docker_images
  smoke_test_docker
}

# ---------------------------------------------------------------- main

MODE=setup
WITH_DOCKER=
for arg in "$@"; do
  case "$arg" in
  --check) MODE=check ;;
  --docker) WITH_DOCKER=1 ;;
  --stop-docker) MODE=stop-docker ;;
  --ensure) MODE=ensure ;;
  *) die "usage: $0 [--check | --ensure] [--docker] | --stop-docker" ;;
  esac
done
case "$MODE" in
check) check; exit 0 ;;
ensure)
  # The check runs in a subshell: it exits non-zero, listing what is missing, when not ready.
  if (check); then exit 0; fi
  [[ $EUID -eq 0 ]] || die "the test bed is not ready; as root, run: bash scripts/testbed.sh${WITH_DOCKER:+ --docker}"
  log "setting it up (as root)"
  ;;
stop-docker)
  [[ $EUID -eq 0 ]] || die "run as root"
  stop_dockerd
  exit 0
  ;;
esac

[[ $EUID -eq 0 ]] || die "run as root (it installs packages and writes /etc/containers)"
CHANGED=()
REBUILT=()
WORK_DIR=$(mktemp -d)
trap 'rm -rf "$WORK_DIR"' EXIT
install_packages
disable_packaged_registry
configure_podman
build_images
start_registry
push_images
smoke_test
[[ -z $WITH_DOCKER ]] || setup_docker
if [[ ${#CHANGED[@]} -eq 0 ]]; then
  echo "testbed: ready, nothing changed (podman $(podman version --format '{{.Client.Version}}'), registry $REGISTRY_ADDR, images bb:v1 bb:v2)"
else
  echo "testbed: ready, changed: ${CHANGED[*]} (registry $REGISTRY_ADDR, images bb:v1 bb:v2)"
fi
