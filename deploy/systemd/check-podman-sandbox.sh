#!/usr/bin/env bash
# Reproduces the sandbox of mcp-agent.service around a real rootful `podman run`, without
# systemd as PID 1: the capability bounding set with setpriv, NoNewPrivileges with setpriv
# --no-new-privs, and the file-system view (ProtectSystem=strict + ReadWritePaths,
# ProtectKernelTunables, ProtectKernelLogs, ProtectHome, PrivateTmp) with `unshare -m`
# read-only remounts. Each check prints "ok" or "FAILED"; the negative checks show that a
# dropped capability really breaks podman, so the positive ones can fail.
# Run as root on a node with podman and the image given (default localhost/bb:v1).
# Seccomp (SystemCallFilter, RestrictAddressFamilies, LockPersonality, ...) is not reproduced
# here: those directives rest on podman's and systemd's documentation (see the unit).
set -uo pipefail
export image="${1:-localhost/bb:v1}"
# Keep in step with CapabilityBoundingSet= in mcp-agent.service.
caps=chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,setfcap,net_bind_service,sys_chroot,sys_admin,net_admin,mknod,sys_resource
# Keep in step with ReadWritePaths= (and StateDirectory=) in mcp-agent.service.
rw_paths=(/var/lib/mcp-agent /srv /var/lib/containers /etc/containers/networks /run/containers /run/libpod /run/netns /run/runc /run/lock)
status=0

bounded() { # bounding set from a comma list, as CapabilityBoundingSet= does
  local list="$1"
  shift
  setpriv --bounding-set "-all,$(sed 's/[^,]*/+&/g' <<<"$list")" --no-new-privs -- "$@"
}
without() { sed "s/\(^\|,\)$1\(,\|$\)/\1/; s/,,/,/; s/,$//" <<<"$caps"; }
check() { # expect(ok|fail) name command...
  local expect="$1" name="$2"
  shift 2
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if { [ "$expect" = ok ] && [ "$rc" -eq 0 ]; } || { [ "$expect" = fail ] && [ "$rc" -ne 0 ]; }; then
    echo "ok      $name"
  else
    echo "FAILED  $name (exit $rc, expected $expect): $(tail -n 2 <<<"$out" | tr '\n' ' ')"
    status=1
  fi
}
run_published() { podman run --rm -p 127.0.0.1::8080 "$image" /bin/echo ok; }

# The file-system view of the unit, in a private mount namespace (slave propagation, as
# systemd sets it up): everything read-only except the API file systems and the writable
# paths; /proc/sys and /sys read-only; /home, /root empty; private /tmp and /var/tmp.
in_sandbox() { # command as one string, run in the unit's view and bounding set
  unshare -m --propagation slave -- bash -c "$(declare -p rw_paths caps image); $(declare -f bounded run_published);"'
    for p in "${rw_paths[@]}"; do [ -e "$p" ] && mount --bind "$p" "$p"; done
    findmnt -rn -o TARGET | while read -r t; do
      t="$(printf "%b" "$t")"
      case "$t" in /proc|/proc/*|/dev|/dev/*|/sys|/sys/*) continue ;; esac
      skip=""; for p in "${rw_paths[@]}"; do case "$t" in "$p"|"$p"/*) skip=1 ;; esac; done
      [ -n "$skip" ] || mount -o remount,bind,ro "$t" 2>/dev/null || true
    done
    mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
    mount --rbind /sys /sys && mount -o remount,bind,ro /sys
    mount -t tmpfs -o ro,mode=0755 tmpfs /home
    mount -t tmpfs -o ro,mode=0700 tmpfs /root
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mount -t tmpfs -o mode=1777 tmpfs /var/tmp
    if touch /etc/.mcp-sandbox-probe 2>/dev/null; then rm -f /etc/.mcp-sandbox-probe; echo "/etc writable: sandbox not applied" >&2; exit 3; fi
    '"$1"
}

echo "== podman $(podman version --format '{{.Client.Version}}') with $image"
check ok "podman run, no restriction" podman run --rm "$image" /bin/echo ok
check ok "bounding set of the unit + no-new-privs: podman run" bounded "$caps" podman run --rm "$image" /bin/echo ok
check ok "bounding set of the unit + no-new-privs: podman run -p (netavark)" bounded "$caps" bash -c "$(declare -f run_published); run_published"
check fail "without CAP_SYS_ADMIN: podman run fails (mounts)" bounded "$(without sys_admin)" podman run --rm "$image" /bin/echo ok
check fail "without CAP_NET_ADMIN: podman run -p fails (netavark)" bounded "$(without net_admin)" bash -c "$(declare -f run_published); run_published"
check fail "without CAP_SETGID: podman run fails (container setgroups)" bounded "$(without setgid)" podman run --rm "$image" /bin/echo ok
# CAP_SYS_MODULE (bit 16) asked for with --cap-add is not in the unit's set: absent inside.
check fail "--cap-add beyond the unit's set does not reach the container" bounded "$caps" podman run --rm --cap-add sys_module "$image" /bin/sh -c 'test $(( 0x$(sed -n "s/^CapEff:\t//p" /proc/self/status) >> 16 & 1 )) = 1'
check ok "file-system view of the unit + bounding set: podman run -p" in_sandbox 'bounded "$caps" bash -c "$(declare -f run_published); run_published"'
check fail "file-system view: /etc/mcp-agent is read-only" in_sandbox 'touch /etc/mcp-agent-probe'
check fail "file-system view: /proc/sys is read-only (ProtectKernelTunables)" in_sandbox 'echo 1 > /proc/sys/net/ipv4/ip_forward'
# A pull extracts layers (chown, mknod for whiteouts): into a separate store, so the node's
# images are not touched; skipped when the test bed's registry is not there.
if [ -n "${PULL_IMAGE:-127.0.0.1:5000/bb:v2}" ] && podman image exists localhost/bb:v1 && curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null; then
  store=/var/lib/containers/mcp-sandbox-check-$$
  check ok "file-system view + bounding set: podman pull (layer extraction)" in_sandbox "bounded \"\$caps\" podman --root $store/root --runroot /run/containers/mcp-sandbox-check-$$ pull -q --tls-verify=false ${PULL_IMAGE:-127.0.0.1:5000/bb:v2}"
  podman --root "$store/root" --runroot "/run/containers/mcp-sandbox-check-$$" rmi -a -f >/dev/null 2>&1
  rm -rf "$store" "/run/containers/mcp-sandbox-check-$$"
else
  echo "skipped podman pull: no registry on 127.0.0.1:5000 (scripts/testbed.sh starts one)"
fi
name="mcp-sandbox-check-$$"
check ok "file-system view: detached container started in the sandbox" in_sandbox "bounded \"\$caps\" podman run -d --name $name -p 127.0.0.1::8080 \"\$image\" /bin/sleep 60"
check ok "... stopped and removed from outside it (the admin's shell)" podman rm -f -t 0 "$name"
exit "$status"
