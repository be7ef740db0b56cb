#!/usr/bin/env bash
# Docker + CRIU part of the lab: two experimental Docker engines (A on the host network, B in its
# own network namespace joined to the host by a veth /30), both using a CRIU 4.1.1 built from
# source, and two locally built images. Everything is cached under .lab/; see usage() below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
HERE=$ROOT/tests/lab/docker
LAB=$ROOT/.lab
DL=$LAB/docker                       # data roots, logs, daemon configs
HASH=$(printf %s "$ROOT" | sha1sum | cut -c1-6)
RUN=/run/streamops-lab-$HASH        # exec roots (containerd/shim socket paths must stay short)

CRIU_VERSION=4.1.1
CRIU_SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe  # from trixie's Sources
CRIU_SRC=$LAB/criu                   # unpacked source tree, built in place
CRIU_DIR=$LAB/criu-bin               # holds only `criu`; first on the engines' PATH (runc runs `criu`)
CRIU_BIN=$CRIU_DIR/criu
CLI=/usr/bin/docker                  # the engine's own 20.10 client (/usr/local/bin/docker is a 28 client)
IMAGE_TINY=streamops-lab/busybox:1
IMAGE_PYTHON=streamops-lab/python:1

# Lab network: everything below is ours alone. Interface names carry the repo hash (<= 15 chars).
NETNS_B=streamops-lab-$HASH-b
BRIDGE_A=sl${HASH}a                 # A's bridge; dockerd refuses to create a non-default bridge itself
VETH_HOST=sl${HASH}h                # host end of the host<->B link
VETH_NS=sl${HASH}n                  # B's end
NET=10.${LAB_NET_OCTET:-213}         # the lab's /16; LAB_NET_OCTET lets a second clone's lab run beside
LINK_HOST_IP=$NET.0.1               # the /30 joining host and namespace B
LINK_NS_IP=$NET.0.2
BRIDGE_A_CIDR=$NET.1.1/24
BIP_B=$NET.2.1/24
POOL_A=$NET.64.0/18                 # `docker network create` subnets, never the host's 172.x ranges
POOL_B=$NET.128.0/18
SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin   # no /usr/local: the engines must run Debian's containerd/runc

APT_PKGS=(docker.io containerd runc iproute2 debootstrap busybox-static xz-utils
  build-essential pkg-config libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev
  protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev
  libgnutls28-dev libnftables-dev libaio-dev uuid-dev)

LAB_PART=docker.sh
# shellcheck source=tests/lab/lib.sh
. "$ROOT/tests/lab/lib.sh"

# Socket paths are limited to 108 bytes; fall back to /run when the clone path is long.
sock_path() {
  local p=$DL/$1.sock
  [ ${#p} -le 100 ] || p=$RUN/$1.sock
  printf %s "$p"
}

# ---------------------------------------------------------------------------------- install --


install_packages() {
  local missing=() p
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "apt: installing ${missing[*]}"
  # Unreachable third-party repos make `update` exit non-zero; what counts is that the
  # packages install, which is checked right after.
  apt-get -o DPkg::Lock::Timeout=900 update -q || say "apt-get update reported errors; continuing"
  [ -x /usr/sbin/policy-rc.d ] || say "WARNING: no policy-rc.d; the docker.io package may start a system dockerd"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || die "apt: $p did not install"
  done
}

# CRIU 4.1.1 upstream tarball from trixie's pool, via a private apt configuration under .lab/apt
# (Debian 12's criu 3.17 fails on this kernel: "vdso: Unexpected rt vDSO area bounds").
fetch_criu() {
  local tarball=$LAB/src/criu_$CRIU_VERSION.orig.tar.xz apt=$LAB/apt
  [ -f "$tarball" ] && return 0
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$LAB/src/dl"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) trixie main" \
    > "$apt/sources.list"
  local opts=(-o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Get::List-Cleanup=0)
  apt-get "${opts[@]}" update -q
  # Whatever Debian revision of $CRIU_VERSION trixie carries (apt-get source wants an exact one).
  local version; version=$(apt-cache "${opts[@]}" showsrc criu |
    awk -v v="$CRIU_VERSION-" '$1 == "Version:" && index($2, v) == 1 { print $2; exit }')
  [ -n "$version" ] || die "trixie has no criu $CRIU_VERSION source package"
  # The .dsc and Debian tarball have been seen refused; the orig tarball is all the build needs.
  (cd "$LAB/src/dl" && apt-get "${opts[@]}" source --download-only "criu=$version") ||
    say "apt-get source reported errors; checking for the orig tarball"
  [ -f "$LAB/src/dl/criu_$CRIU_VERSION.orig.tar.xz" ] || die "criu_$CRIU_VERSION.orig.tar.xz was not fetched"
  # apt checked it against the signed Sources index; also pin it so a rebuild is reproducible.
  echo "$CRIU_SHA256  $LAB/src/dl/criu_$CRIU_VERSION.orig.tar.xz" | sha256sum -c --quiet ||
    die "criu tarball sha256 differs from the pinned one"
  mv "$LAB/src/dl/criu_$CRIU_VERSION.orig.tar.xz" "$tarball"
}

build_criu() {
  if [ -x "$CRIU_BIN" ] && "$CRIU_BIN" --version 2>/dev/null | grep -q "Version: $CRIU_VERSION\$"; then
    return 0
  fi
  fetch_criu
  rm -rf "$CRIU_SRC" && mkdir -p "$CRIU_SRC"
  tar -xJf "$LAB/src/criu_$CRIU_VERSION.orig.tar.xz" -C "$CRIU_SRC" --strip-components=1
  say "building criu $CRIU_VERSION (about 2 minutes)"
  make -C "$CRIU_SRC" -j2 criu > "$LAB/criu-build.log" 2>&1 || { tail -30 "$LAB/criu-build.log"; die "criu build failed"; }
  mkdir -p "$CRIU_DIR"
  install -m 0755 "$CRIU_SRC/criu/criu" "$CRIU_BIN.tmp" && mv "$CRIU_BIN.tmp" "$CRIU_BIN"
  "$CRIU_BIN" check 2>&1 | tee "$LAB/criu-check.log" | grep -q 'Looks good' ||
    { cat "$LAB/criu-check.log"; die "criu check did not say 'Looks good'"; }
}

# Tiny image: a static busybox with every applet linked in /bin (docker's default PATH has /bin).
build_rootfs_tiny() {
  local out=$LAB/images/busybox-rootfs.tar dir=$LAB/images/build-busybox a
  [ -f "$out" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root,var/run}
  cp /bin/busybox "$dir/bin/busybox"
  for a in $("$dir/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$dir/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
  chmod 1777 "$dir/tmp"
  tar --numeric-owner --sort=name -C "$dir" -cf "$out.tmp" . && mv "$out.tmp" "$out"
  rm -rf "$dir"
}

# Python image: debootstrap minbase + python3 from the system's Debian mirror, tarred once.
build_rootfs_python() {
  local out=$LAB/images/python-rootfs.tar dir=$LAB/images/build-python
  [ -f "$out" ] && return 0
  umount_below "$dir"; rm -rf "$dir"
  local suite; suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  say "debootstrap $suite (minbase + python3)"
  trap 'umount_below "'"$dir"'"' EXIT   # debootstrap mounts /proc etc. inside the target
  debootstrap --variant=minbase --include=python3 \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$dir" "$(debian_mirror)" > "$LAB/images/debootstrap.log" 2>&1 ||
    { tail -30 "$LAB/images/debootstrap.log"; die "debootstrap failed"; }
  umount_below "$dir"; trap - EXIT
  # Smaller image: drop package caches, docs and device nodes (docker mounts its own /dev).
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/{doc,man,info}/* \
    "${dir:?}"/dev/* "$dir"/var/log/*.log "$dir"/debootstrap
  tar --numeric-owner --sort=name -C "$dir" -cf "$out.tmp" . && mv "$out.tmp" "$out"
  rm -rf "$dir"
}

# Unmount anything mounted at or below a path (deepest first).
umount_below() {
  local base=$1 m
  awk -v b="$base" '$5 == b || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cmd_install() {
  mkdir -p "$LAB/src" "$LAB/images" "$DL"
  timed "apt packages" install_packages
  timed "criu build" build_criu
  timed "image tiny rootfs" build_rootfs_tiny
  timed "image python rootfs" build_rootfs_python
}

# ---------------------------------------------------------------------------------- engines --

eng_data() { printf %s "$DL/$1/data"; }
eng_exec() { printf %s "$RUN/$1"; }
eng_pidfile() { printf %s "$DL/$1/dockerd.pid"; }
eng_conf() { printf %s "$DL/$1/daemon.json"; }
dk() { local e=$1; shift; "$CLI" -H "unix://$(sock_path "$e")" "$@"; }

# Pid of engine $1's dockerd, only if that process is really ours (its command line names our config).
eng_pid() {
  local pf pid; pf=$(eng_pidfile "$1")
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$(eng_conf "$1")" || return 1
  echo "$pid"
}

# Pid of the containerd that engine $1's dockerd started (it outlives a killed dockerd).
containerd_pid() {
  local pf pid; pf=$(eng_exec "$1")/containerd/containerd.pid
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$(eng_exec "$1")/containerd" || return 1
  echo "$pid"
}

# The lab's $NET.0.0/16 addresses must be ours alone (e.g. not a second clone's lab).
# A lab whose engines are gone (its session ended before `down`) leaves its links behind: those
# are reclaimed; a lab whose engines still run is another clone's, and we stop.
check_subnet_free() {
  local other iface hash
  other=$(ip -4 -o addr show | awk -v net="$NET." 'index($4, net) == 1 { print $2 }' | grep -vx -e "$BRIDGE_A" -e "$VETH_HOST" || true)
  for iface in $other; do
    hash=$(printf %s "$iface" | sed -n 's/^sl\([0-9a-f]\{6\}\)[ah]$/\1/p')
    [ -n "$hash" ] || die "$NET.0.0/16 is already used on the host by $iface, which is not a lab's"
    # (the pattern comes from a file so grep's own command line does not match it)
    if grep -qsF -f <(printf '/run/streamops-lab-%s/\n' "$hash") /proc/[0-9]*/cmdline; then
      die "$NET.0.0/16 is used by another running lab clone ($iface); take that lab down first"
    fi
    echo "lab/docker: reclaiming $iface, left by a lab whose engines no longer run" >&2
    ip link delete "$iface" 2>/dev/null || true
    if [ -e "/run/netns/streamops-lab-$hash-b" ]; then ip netns delete "streamops-lab-$hash-b" 2>/dev/null || true; fi
  done
}

setup_net_a() {
  check_subnet_free
  if ! ip link show "$BRIDGE_A" > /dev/null 2>&1; then
    ip link add name "$BRIDGE_A" type bridge
    ip addr add "$BRIDGE_A_CIDR" dev "$BRIDGE_A"
  fi
  ip link set "$BRIDGE_A" up
}

setup_net_b() {
  check_subnet_free
  [ -e "/run/netns/$NETNS_B" ] || ip netns add "$NETNS_B"
  ip -n "$NETNS_B" link set lo up
  ip link show "$VETH_HOST" > /dev/null 2>&1 ||
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS" netns "$NETNS_B"
  ip addr replace "$LINK_HOST_IP/30" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  ip -n "$NETNS_B" addr replace "$LINK_NS_IP/30" dev "$VETH_NS"
  ip -n "$NETNS_B" link set "$VETH_NS" up
}

write_conf() {
  local e=$1 net_key net_value publish pool
  if [ "$e" = a ]; then net_key=bridge net_value=$BRIDGE_A publish=127.0.0.1 pool=$POOL_A
  else net_key=bip net_value=$BIP_B publish=$LINK_NS_IP pool=$POOL_B; fi
  mkdir -p "$DL/$e" "$(eng_data "$e")" "$(eng_exec "$e")" "$(dirname "$(sock_path "$e")")"
  sed -e "s|@HOST@|unix://$(sock_path "$e")|" -e "s|@DATA_ROOT@|$(eng_data "$e")|" \
    -e "s|@EXEC_ROOT@|$(eng_exec "$e")|" -e "s|@PIDFILE@|$(eng_pidfile "$e")|" \
    -e "s|@NET_KEY@|$net_key|" -e "s|@NET_VALUE@|$net_value|" -e "s|@PUBLISH_IP@|$publish|" \
    -e "s|@POOL@|$pool|" -e "s|@CGROUP_PARENT@|/streamops-lab-$HASH-$e|" -e "s|@KEY_PATH@|$DL/$e/key.json|" \
    "$HERE/daemon.json.tmpl" > "$(eng_conf "$e")"
}

wait_engine() {
  local e=$1
  for _ in $(seq 1 120); do
    if [ "$(dk "$e" info --format '{{.ExperimentalBuild}}' 2>/dev/null)" = true ]; then return 0; fi
    eng_pid "$e" > /dev/null || { tail -20 "$DL/$e/dockerd.log"; die "engine $e exited"; }
    sleep 0.25
  done
  tail -20 "$DL/$e/dockerd.log"; die "engine $e did not answer with experimental=true in 30s"
}

start_engine() {
  local e=$1
  if eng_pid "$e" > /dev/null; then wait_engine "$e"; return 0; fi
  [ -x "$CRIU_BIN" ] || die "criu not built; run: $0 install"
  write_conf "$e"
  rm -f "$(eng_pidfile "$e")"
  # setsid: the engine must outlive this shell's process group; env -i: no stray DOCKER_*/proxy
  # settings; CRIU's dir first on PATH, inherited by containerd, the shims and runc.
  local run=(setsid env -i "PATH=$CRIU_DIR:$SYS_PATH" dockerd --experimental --config-file "$(eng_conf "$e")")
  if [ "$e" = a ]; then
    setup_net_a
    "${run[@]}" >> "$DL/a/dockerd.log" 2>&1 < /dev/null 9>&- &    # 9>&-: not our lock
  else
    setup_net_b
    # nsenter, not `ip netns exec` (that remounts /sys and dockerd loses the cgroup mounts).
    setsid nsenter --net="/run/netns/$NETNS_B" "${run[@]:1}" >> "$DL/b/dockerd.log" 2>&1 < /dev/null 9>&- &
  fi
  for _ in $(seq 1 40); do eng_pid "$e" > /dev/null && break; sleep 0.25; done
  wait_engine "$e"
}

# Stop engine $1 by its pid: TERM (dockerd stops its containers, each within its stop timeout,
# 10 s by default, then its containerd), or with --kill a SIGKILL of dockerd, like a crash: its
# containerd dies with it, shims and containers live on until the engine restarts and ends them.
stop_engine() {
  local e=$1 sig=TERM pid
  [ "${2:-}" = --kill ] && sig=KILL
  if pid=$(eng_pid "$e"); then
    kill -s "$sig" "$pid"
    for _ in $(seq 1 120); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
    [ ! -d "/proc/$pid" ] || { say "engine $e ignored TERM for 30s; killing"; kill -KILL "$pid"; }
  fi
  [ "$sig" = KILL ] && return 0
  if pid=$(containerd_pid "$e"); then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
  fi
  return 0
}

# After a crash, containers of engine $1 may outlive everything: delete them through runc's
# state dir, then end the shims that served this engine's containerd (matched by its socket path).
reap_engine() {
  local e=$1 root id pid
  root=$(eng_exec "$e")/runtime-runc/moby
  if [ -d "$root" ]; then
    for id in $(runc --root "$root" list -q 2>/dev/null); do runc --root "$root" delete -f "$id" || true; done
  fi
  # shellcheck disable=SC2013  # grep prints one /proc/PID/cmdline path per line: words are lines here
  for pid in $(grep -lF -- "$(eng_exec "$e")/containerd/containerd.sock" /proc/[0-9]*/cmdline 2>/dev/null |
    cut -d/ -f3); do
    case $(readlink "/proc/$pid/exe" 2>/dev/null) in
      */containerd-shim*) kill -TERM "$pid" 2>/dev/null || true ;;
    esac
  done
  umount_below "$(eng_exec "$e")"
  umount_below "$(eng_data "$e")"
}

load_images() {
  local e=$1
  dk "$e" image inspect "$IMAGE_TINY" > /dev/null 2>&1 ||
    dk "$e" import --change 'CMD ["/bin/sh"]' "$LAB/images/busybox-rootfs.tar" "$IMAGE_TINY" > /dev/null
  dk "$e" image inspect "$IMAGE_PYTHON" > /dev/null 2>&1 ||
    dk "$e" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["python3"]' "$LAB/images/python-rootfs.tar" "$IMAGE_PYTHON" > /dev/null
}

write_env() {
  cat > "$LAB/docker.env.tmp" <<EOF
DOCKER_A_HOST=unix://$(sock_path a)
DOCKER_B_HOST=unix://$(sock_path b)
DOCKER_A_DATA_ROOT=$(eng_data a)
DOCKER_B_DATA_ROOT=$(eng_data b)
DOCKER_B_NETNS=$NETNS_B
DOCKER_A_LINK_IP=$LINK_HOST_IP
DOCKER_B_LINK_IP=$LINK_NS_IP
DOCKER_CLI=$CLI
CRIU_BIN=$CRIU_BIN
CRIU_VERSION=$CRIU_VERSION
LAB_IMAGE_TINY=$IMAGE_TINY
LAB_IMAGE_PYTHON=$IMAGE_PYTHON
EOF
  mv "$LAB/docker.env.tmp" "$LAB/docker.env"
}

cmd_up() {
  cmd_install
  timed "engine a" start_engine a
  timed "engine b" start_engine b
  timed "images a" load_images a
  timed "images b" load_images b
  write_env
  say "up; addresses in $LAB/docker.env"
}

cmd_down() {
  local e
  for e in a b; do stop_engine "$e"; reap_engine "$e"; done
  [ ! -e "/run/netns/$NETNS_B" ] || ip netns del "$NETNS_B"    # takes B's veth end and bridge with it
  ! ip link show "$VETH_HOST" > /dev/null 2>&1 || ip link del "$VETH_HOST"
  ! ip link show "$BRIDGE_A" > /dev/null 2>&1 || ip link del "$BRIDGE_A"
  rm -f "$LAB/docker.env"
  say "down"
}

cmd_status() {
  local e pid rc=0
  for e in a b; do
    if pid=$(eng_pid "$e"); then
      printf 'engine %s: pid %s, %s, %s\n' "$e" "$pid" "$(sock_path "$e")" \
        "$(dk "$e" info --format 'server {{.ServerVersion}} experimental={{.ExperimentalBuild}} containers={{.ContainersRunning}}/{{.Containers}} images={{.Images}}' 2>&1)"
    else
      printf 'engine %s: down\n' "$e"; rc=1
    fi
  done
  printf 'netns %s: %s\n' "$NETNS_B" "$([ -e "/run/netns/$NETNS_B" ] && echo present || echo absent)"
  printf 'criu: %s\n' "$("$CRIU_BIN" --version 2>/dev/null | head -1 || echo 'not built')"
  return $rc
}

usage() {
  cat >&2 <<EOF
usage: $0 install | up | down | status | stop-engine a|b [--kill] | start-engine a|b
  install       apt packages, CRIU $CRIU_VERSION build, image root filesystems (cached in .lab/)
  up            install, then start both engines, load images, write .lab/docker.env
  down          stop both engines by pid, remove the namespace, veth and bridge
  stop-engine   stop one engine (TERM; --kill = SIGKILL dockerd only, like a crash)
  start-engine  start one engine again
EOF
  exit 2
}

[ $# -ge 1 ] || usage
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$LAB"
# One changing docker.sh at a time per clone (status only reads).
if [ "$1" != status ]; then exec 9> "$LAB/docker.lock"; flock 9; fi
case $1 in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  stop-engine) [[ ${2:-} =~ ^[ab]$ ]] || usage; stop_engine "$2" "${3:-}" ;;
  start-engine) [[ ${2:-} =~ ^[ab]$ ]] || usage; start_engine "$2"; load_images "$2" ;;
  *) usage ;;
esac
