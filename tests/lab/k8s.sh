#!/usr/bin/env bash
# Kubernetes part of the lab: Kubernetes v1.34.4 built from the Go module proxy, etcd 3.5 from
# Debian trixie, a control plane on 127.0.0.1 and two REAL kubelet nodes (regions a and b), each
# with its own containerd, CNI bridge and cgroup root; optional kwok fake nodes. Images are made
# without a registry (tests/lab/k8s/image.py) and imported into each node's containerd.
#
#   tests/lab/k8s.sh install          apt packages, etcd-server from trixie (cached in .lab/)
#   tests/lab/k8s.sh build            kube-* and kubectl into .lab/k8s/bin (skipped when built)
#   tests/lab/k8s.sh images          only make the image tars (up makes and imports them)
#   tests/lab/k8s.sh up [--kwok]      start what is not running, import images, write .lab/k8s.env
#   tests/lab/k8s.sh down [--purge]   pods deleted, every process stopped by its pid, mounts,
#                                     bridges, cgroups, sysctls and routes undone; --purge also
#                                     drops etcd data and the nodes' containerd/kubelet state
#   tests/lab/k8s.sh status           what runs, on which port, what the nodes look like
#   tests/lab/k8s.sh kubectl ARGS...  kubectl with the lab's admin kubeconfig
#
# K8S_LAB_KWOK=1 is the same as `up --kwok` (2 fake nodes per region, tainted
# kwok.x-k8s.io/node=fake:NoSchedule). Everything lives under <repo>/.lab/k8s (ignored by git),
# sockets and runtime state under /run/streamops-lab-<hash>/k8s-*. Processes are only ever ended
# by the pids this script wrote (or, for containerd shims, by the pids whose command line names
# our own containerd socket); nothing is killed by name.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
LABDIR=$ROOT/tests/lab
HERE=$LABDIR/k8s
LAB=$ROOT/.lab
KL=$LAB/k8s
BIN=$KL/bin
PKI=$KL/pki
CONF=$KL/conf
PIDS=$KL/run
LOGS=$KL/logs
STATE=$KL/state.env          # ports, picked once and kept across restarts
# The host's values before a kubelet changed them. One file per machine, not per clone: a clone
# whose session ended before its `down` (CI runs in another folder) leaves it for the next lab's
# `down` to restore. Two clones' Kubernetes labs never run at once (check_pod_range_free).
SYSCTL_SAVED=/run/streamops-lab-k8s.sysctl
ENV_FILE=$LAB/k8s.env
HASH=$(printf %s "$ROOT" | sha1sum | cut -c1-6)   # same hash as docker.sh
RUN=/run/streamops-lab-$HASH
PYTHON=${PYTHON:-python3}
VENV_PIP=$ROOT/.venv/bin/pip

K8S_VERSION=v1.34.4
ETCD_SERIES=3.5.                 # trixie's etcd-server (3.5.16 when written)
KWOK_VERSION=v0.8.0
CONFLUENT_KAFKA_VERSION=2.16.1
SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin  # Debian's containerd/runc, never /usr/local
CTR=/usr/bin/ctr

NODES=(a b)                      # node X is region X
REGION_LABEL=topology.kubernetes.io/region
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/16
node_name() { printf 'streamops-%s-%s' "$HASH" "$1"; }
node_index() { case $1 in a) echo 1 ;; b) echo 2 ;; esac; }
node_subnet() { printf '10.244.%s.0/24' "$(node_index "$1")"; }
node_ip() { printf '10.244.%s.1' "$(node_index "$1")"; }
node_bridge() { printf 'sk%s%s' "$HASH" "$1"; }           # <= 15 chars
node_cgroup() { printf 'streamops-lab-%s-k8s-%s' "$HASH" "$1"; }
node_dir() { printf %s "$KL/nodes/$1"; }                   # containerd root, kubelet dirs, CNI
node_run() { printf %s "$RUN/k8s-$1"; }                   # sockets, containerd state, runc root
node_sock() { printf %s "$(node_run "$1")/containerd.sock"; }
# The kubelet puts unix sockets in its root dir: keep it short for long clone paths.
kubelet_root() {
  local p; p=$(node_dir "$1")/kubelet
  [ ${#p} -le 60 ] || p=$(node_run "$1")/kubelet
  printf %s "$p"
}

IMAGE_PAUSE=docker.io/streamops-lab/pause:1
IMAGE_CONSUMER=streamops-lab/consumer:1
IMAGES=$LAB/images

APT_PKGS=(containerd runc containernetworking-plugins openssl iproute2 util-linux curl busybox-static)

# Kubelet sysctls (it sets these itself at start; `down` puts the host's values back).
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

LAB_PART=k8s.sh
# say, die, timed, debian_mirror (the system's Debian mirror, the same one docker.sh uses)
# shellcheck source=tests/lab/lib.sh
. "$LABDIR/lib.sh"

# Unmount anything mounted at or below a path (deepest first).
umount_below() {
  local base=$1 m
  awk -v b="$base" '$5 == b || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# ---------------------------------------------------------------------------------- install --

install_packages() {
  local missing=() p
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "apt: installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=900 update -q || say "apt-get update reported errors; continuing"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || die "apt: $p did not install"
  done
}

# etcd-server 3.5 from trixie: a private apt configuration (own sources list and lists folder, the
# system's apt state untouched), `apt-get download`, unpacked with dpkg-deb into .lab/k8s/etcd.
ETCD=$KL/etcd/usr/bin/etcd
install_etcd() {
  local have; have=$("$ETCD" --version 2> /dev/null) || have=""
  [[ $have == *"etcd Version: $ETCD_SERIES"* ]] && return 0
  local apt=$LAB/apt-trixie
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/dl"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) trixie main" \
    > "$apt/sources.list"
  local opts=(-o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Get::List-Cleanup=0)
  apt-get "${opts[@]}" update -q > "$apt/update.log" 2>&1 || { tail "$apt/update.log"; die "apt-get update (trixie) failed"; }
  local version; version=$(apt-cache "${opts[@]}" policy etcd-server | awk '$1 == "Candidate:" { print $2 }')
  case $version in "$ETCD_SERIES"*) ;; *) die "trixie's etcd-server is '$version', not $ETCD_SERIES*" ;; esac
  rm -f "$apt/dl"/*.deb
  (cd "$apt/dl" && apt-get "${opts[@]}" download "etcd-server=$version") > "$apt/download.log" 2>&1 ||
    { tail "$apt/download.log"; die "apt-get download etcd-server failed"; }
  rm -rf "$KL/etcd.tmp" && mkdir -p "$KL/etcd.tmp"
  dpkg-deb -x "$apt/dl"/etcd-server_*.deb "$KL/etcd.tmp"
  rm -rf "$KL/etcd" && mv "$KL/etcd.tmp" "$KL/etcd"
  "$ETCD" --version | head -1 >&2
}

cmd_install() {
  mkdir -p "$KL" "$IMAGES"
  timed "apt packages" install_packages
  timed "etcd from trixie" install_etcd
}

# ------------------------------------------------------------------------------------ build --

# Go's caches under .lab (a fresh machine needs nothing else); the binaries are keyed on the hash
# of go.mod + go.sum + the build flags, so a warm run does not even start the Go tool.
go_env() {
  export GOPATH=$LAB/go GOMODCACHE=$LAB/go/pkg/mod GOCACHE=$LAB/go/cache GOFLAGS=-buildvcs=false \
    GOTOOLCHAIN=local CGO_ENABLED=0
}
K8S_CMDS=(kubectl kube-apiserver kube-controller-manager kube-scheduler kubelet)
build_key() {
  { cat "$HERE/go.mod" "$HERE/go.sum"; echo "$K8S_VERSION ${K8S_CMDS[*]} -s -w -trimpath"; } | sha256sum | cut -c1-16
}

cmd_build() {
  local key; key=$(build_key)
  [ -f "$BIN/.key" ] && [ "$(cat "$BIN/.key")" = "$key" ] && return 0
  command -v go > /dev/null || die "go not found (Go >= 1.24 is needed to build Kubernetes)"
  go_env
  local t0; t0=$(date +%s)
  say "building Kubernetes $K8S_VERSION (${K8S_CMDS[*]}) from the Go module proxy; about 6 minutes cold"
  mkdir -p "$KL"
  (cd "$HERE" && go mod download) > "$KL/build.log" 2>&1 || { tail -20 "$KL/build.log"; die "go mod download failed"; }
  local v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean
    -X $c.gitVersion=$K8S_VERSION -X $c.gitMajor=1 -X $c.gitMinor=$minor -X $c.gitTreeState=clean"
  rm -rf "$BIN.tmp" && mkdir -p "$BIN.tmp"
  local cmd t
  for cmd in "${K8S_CMDS[@]}"; do
    t=$(date +%s)
    (cd "$HERE" && go build -p 2 -trimpath -ldflags "$ldflags" -o "$BIN.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd") \
      >> "$KL/build.log" 2>&1 || { tail -30 "$KL/build.log"; die "go build $cmd failed (log: $KL/build.log)"; }
    say "built $cmd in $(( $(date +%s) - t ))s"
  done
  local said; said=$("$BIN.tmp/kubectl" version --client 2> /dev/null) || said=""
  [[ $said == *"$K8S_VERSION"* ]] || die "kubectl does not say $K8S_VERSION"
  echo "$key" > "$BIN.tmp/.key"
  [ ! -d "$BIN" ] || cp -p "$BIN"/kwok "$BIN.tmp/" 2>/dev/null || true   # kwok has its own key
  rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
  say "Kubernetes $K8S_VERSION built in $(( $(date +%s) - t0 ))s"
}

# kwok (only for `up --kwok`): `go install` from the module proxy; its stages come from the
# kustomize/stage folder of the same module in the module cache.
KWOK_STAGES=(node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete)
build_kwok() {
  local key="kwok $KWOK_VERSION"
  [ -x "$BIN/kwok" ] && [ -f "$BIN/.kwok-key" ] && [ "$(cat "$BIN/.kwok-key")" = "$key" ] && return 0
  go_env
  mkdir -p "$BIN"
  say "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" > "$KL/kwok-build.log" 2>&1 ||
    { tail -20 "$KL/kwok-build.log"; die "kwok build failed"; }
  echo "$key" > "$BIN/.kwok-key"
}

kwok_stages() {
  local out=$CONF/kwok-stages.yaml mod s head
  head="# kwok $KWOK_VERSION stages: ${KWOK_STAGES[*]}"
  [ -s "$out" ] && [ "$(head -1 "$out")" = "$head" ] && return 0
  go_env
  # (outside our module, so its go.sum is left alone)
  mod=$(cd "$KL" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -d "$mod/kustomize/stage" ] || die "no kustomize/stage in sigs.k8s.io/kwok@$KWOK_VERSION ($mod)"
  echo "$head" > "$out.tmp"
  for s in "${KWOK_STAGES[@]}"; do
    [ -f "$mod/kustomize/stage/$s.yaml" ] || die "kwok stage $s.yaml not found under $mod/kustomize/stage"
    { echo "---"; cat "$mod/kustomize/stage/$s.yaml"; } >> "$out.tmp"
  done
  mv "$out.tmp" "$out"
}

# --------------------------------------------------------------------------------- state ----

pick_ports() {  # N -> N free TCP ports on 127.0.0.1, none of them already in a lab state file
  cat "$LAB"/*/state.env 2>/dev/null | grep -o '[0-9]\{4,5\}' | "$PYTHON" -c '
import socket, sys
taken = set(int(x) for x in sys.stdin.read().split())
n = int(sys.argv[1]); out = []; socks = []
while len(out) < n:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
    p = s.getsockname()[1]
    if p not in taken and p not in out: out.append(p)
print("\n".join(map(str, out)))' "$1"
}

PORT_NAMES=(ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CM_PORT SCHEDULER_PORT
  KUBELET_PORT_A KUBELET_HEALTHZ_A KUBELET_PORT_B KUBELET_HEALTHZ_B KWOK_PORT)
ensure_state() {
  if [ ! -f "$STATE" ]; then
    mkdir -p "$KL"
    local ports i
    mapfile -t ports < <(pick_ports ${#PORT_NAMES[@]})
    {
      echo "# Picked at first start; kept so restarts keep their addresses."
      for i in "${!PORT_NAMES[@]}"; do echo "${PORT_NAMES[$i]}=${ports[$i]}"; done
    } > "$STATE.tmp"
    mv "$STATE.tmp" "$STATE"
    say "picked ports: $STATE"
  fi
  # shellcheck disable=SC1090
  . "$STATE"
}
kubelet_port() { local v=KUBELET_PORT_${1^^}; echo "${!v}"; }
kubelet_healthz() { local v=KUBELET_HEALTHZ_${1^^}; echo "${!v}"; }
api_url() { echo "https://127.0.0.1:$APISERVER_PORT"; }

# ----------------------------------------------------------------------------------- pki ----

# cert NAME CN O KIND SANS: an EC P-256 key and a certificate signed by the lab CA, made once.
# KIND is client, server or both; SANS an openssl subjectAltName list (or "").
cert() {
  local name=$1 cn=$2 org=$3 kind=$4 sans=$5 eku
  [ -s "$PKI/$name.crt" ] && [ -s "$PKI/$name.key" ] && return 0
  case $kind in client) eku=clientAuth ;; server) eku=serverAuth ;; both) eku=serverAuth,clientAuth ;; esac
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2> /dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } > "$PKI/$name.ext"
  openssl req -new -key "$PKI/$name.key" -subj "/CN=$cn${org:+/O=$org}" 2> /dev/null |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
      -extfile "$PKI/$name.ext" -out "$PKI/$name.crt.tmp" 2> /dev/null
  mv "$PKI/$name.crt.tmp" "$PKI/$name.crt"
}

make_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  if [ ! -s "$PKI/ca.crt" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2> /dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=streamops-lab-k8s-ca" -days 3650 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt.tmp" 2> /dev/null
    mv "$PKI/ca.crt.tmp" "$PKI/ca.crt"
  fi
  if [ ! -s "$PKI/sa.pub" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/sa.key" 2> /dev/null
    openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub.tmp" && mv "$PKI/sa.pub.tmp" "$PKI/sa.pub"
  fi
  cert apiserver kube-apiserver "" server \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters client ""
  cert admin admin system:masters client ""
  cert controller-manager system:kube-controller-manager "" client ""
  cert scheduler system:kube-scheduler "" client ""
  cert kwok kwok-controller system:masters client ""
  local n name
  for n in "${NODES[@]}"; do
    name=$(node_name "$n")
    cert "node-$name" "system:node:$name" system:nodes client ""
    cert "kubelet-$name" "$name" "" server "DNS:$name,IP:127.0.0.1,IP:$(node_ip "$n")"
  done
}

# kubeconfig FILE CERT-NAME: client certificate kubeconfig for the lab's apiserver.
kubeconfig() {
  local file=$1 user=$2
  cat > "$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: streamops-lab
  cluster:
    server: $(api_url)
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$user.crt")
    client-key-data: $(base64 -w0 < "$PKI/$user.key")
contexts:
- name: streamops-lab
  context: {cluster: streamops-lab, user: $user}
current-context: streamops-lab
EOF
  chmod 600 "$file.tmp"; mv "$file.tmp" "$file"
}
ADMIN_KUBECONFIG=$KL/admin.kubeconfig
kc() { "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# -------------------------------------------------------------------------------- configs ----

render_configs() {
  mkdir -p "$CONF" "$PIDS" "$LOGS"
  kubeconfig "$ADMIN_KUBECONFIG" admin
  kubeconfig "$CONF/controller-manager.kubeconfig" controller-manager
  kubeconfig "$CONF/scheduler.kubeconfig" scheduler
  kubeconfig "$CONF/kwok.kubeconfig" kwok
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost"
    local n; for n in "${NODES[@]}"; do echo "127.0.0.1 $(node_name "$n")"; done
  } > "$CONF/apiserver-hosts"
  local n name dir run
  for n in "${NODES[@]}"; do
    name=$(node_name "$n") dir=$(node_dir "$n") run=$(node_run "$n")
    mkdir -p "$dir/cni" "$dir/containerd/root" "$dir/containerd/opt" "$dir/pod-logs" "$run" "$(kubelet_root "$n")"
    kubeconfig "$dir/kubelet.kubeconfig" "node-$name"
    sed -e "s|@ROOT@|$dir/containerd/root|g" -e "s|@STATE@|$run/state|g" -e "s|@SOCK@|$(node_sock "$n")|g" \
      -e "s|@OPT@|$dir/containerd/opt|g" -e "s|@RUNC_ROOT@|$run/runc|g" -e "s|@CNI_CONF@|$dir/cni|g" \
      -e "s|@PAUSE@|$IMAGE_PAUSE|g" "$HERE/containerd.toml.in" > "$dir/containerd.toml"
    sed -e "s|@NAME@|lab-$n|g" -e "s|@BRIDGE@|$(node_bridge "$n")|g" -e "s|@SUBNET@|$(node_subnet "$n")|g" \
      -e "s|@GATEWAY@|$(node_ip "$n")|g" -e "s|@IPAM_DIR@|$run/cni-ipam|g" \
      "$HERE/cni.conflist.in" > "$dir/cni/10-lab.conflist"
    sed -e "s|@PORT@|$(kubelet_port "$n")|g" -e "s|@HEALTHZ@|$(kubelet_healthz "$n")|g" \
      -e "s|@CA@|$PKI/ca.crt|g" -e "s|@TLS_CERT@|$PKI/kubelet-$name.crt|g" -e "s|@TLS_KEY@|$PKI/kubelet-$name.key|g" \
      -e "s|@CGROUP_ROOT@|/$(node_cgroup "$n")|g" -e "s|@SOCK@|$(node_sock "$n")|g" \
      -e "s|@POD_LOGS@|$dir/pod-logs|g" "$HERE/kubelet.yaml.in" > "$dir/kubelet.yaml"
  done
}

# ------------------------------------------------------------------------------- processes ----

# A process is ours when its pid file names a live pid whose command line contains the marker
# we gave it (so a reused pid is never signalled).
pid_of() {  # name marker
  local pf=$PIDS/$1.pid pid
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
  local cmdline; cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null) || return 1
  [[ $cmdline == *"$2"* ]] || return 1
  echo "$pid"
}

# start NAME CMD...: detached in its own session, a clean environment, its log in logs/NAME.log;
# the pid written is the program's own (bash execs it; so do unshare and sh below).
start_proc() {
  local name=$1; shift
  rm -f "$PIDS/$name.pid"
  # shellcheck disable=SC2016  # expanded by the inner bash: it writes its own pid, then becomes the command
  setsid env -i "PATH=$SYS_PATH" HOME=/root LANG=C.UTF-8 bash -c 'echo $$ > "$0"; exec "$@"' \
    "$PIDS/$name.pid" "$@" < /dev/null >> "$LOGS/$name.log" 2>&1 9>&- &
  local i
  for i in $(seq 100); do [ -s "$PIDS/$name.pid" ] && return 0; sleep 0.02; done
  die "$name did not start (see $LOGS/$name.log)"
}

# stop_procs TIMEOUT NAME MARKER [NAME MARKER ...]: SIGTERM to all of them at once, then wait for
# all; SIGKILL for any still there after TIMEOUT seconds.
stop_procs() {
  local timeout=$1 names=() pids=() pid i; shift
  while [ $# -ge 2 ]; do
    if pid=$(pid_of "$1" "$2"); then
      kill -TERM "$pid" 2> /dev/null || true
      names+=("$1"); pids+=("$pid")
    fi
    rm -f "$PIDS/$1.pid"
    shift 2
  done
  local deadline=$((SECONDS + timeout)) left
  while :; do
    left=()
    for i in "${!pids[@]}"; do [ ! -d "/proc/${pids[$i]}" ] || left+=("$i"); done
    [ ${#left[@]} -gt 0 ] || break
    if [ $SECONDS -ge $deadline ]; then
      for i in "${left[@]}"; do
        say "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for ${timeout}s: SIGKILL"
        kill -KILL "${pids[$i]}" 2> /dev/null || true
      done
      deadline=$((SECONDS + 5))
    fi
    sleep 0.05
  done
}

# Markers: a path only our own instance of each program has on its command line.
m_etcd() { echo "--data-dir=$KL/etcd-data"; }
m_apiserver() { echo "--tls-cert-file=$PKI/apiserver.crt"; }
m_cm() { echo "--kubeconfig=$CONF/controller-manager.kubeconfig"; }
m_scheduler() { echo "--kubeconfig=$CONF/scheduler.kubeconfig"; }
m_containerd() { echo "--config=$(node_dir "$1")/containerd.toml"; }
m_kubelet() { echo "--config=$(node_dir "$1")/kubelet.yaml"; }
m_kwok() { echo "--kubeconfig=$CONF/kwok.kubeconfig"; }

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# wait_for WHAT SECONDS NAME MARKER CMD...: until CMD succeeds; fails early if NAME's process died.
wait_for() {
  local what=$1 secs=$2 name=$3 marker=$4; shift 4
  local deadline=$((SECONDS + secs))
  until "$@" > /dev/null 2>&1; do
    pid_of "$name" "$marker" > /dev/null || { tail -25 "$LOGS/$name.log" >&2; die "$name exited while starting ($what)"; }
    [ $SECONDS -lt $deadline ] || { tail -25 "$LOGS/$name.log" >&2; die "$what not after ${secs}s (log: $LOGS/$name.log)"; }
    sleep 0.1
  done
}

# ------------------------------------------------------------------------------- network ----

# Safety first: without kube-proxy a Service ClusterIP does not route, and a packet to one (or to
# a pod range not on our bridges) would leave by the default route. Blackholes catch both; the
# nodes' /24 bridge routes are more specific. Added before anything starts, removed at the end.
add_blackholes() {
  local cidr
  for cidr in "$SERVICE_CIDR" "$POD_CIDR"; do
    [ -n "$(ip route show type blackhole "$cidr")" ] || ip route add blackhole "$cidr"
  done
}
del_blackholes() {
  local cidr
  for cidr in "$SERVICE_CIDR" "$POD_CIDR"; do
    [ -z "$(ip route show type blackhole "$cidr")" ] || ip route del blackhole "$cidr"
  done
}

# 10.244.0.0/16 must be ours alone. A bridge there of another clone's lab whose kubelets and
# shims are gone (its session ended before `down`) is reclaimed; one whose lab still runs, or
# that is no lab's, stops us.
check_pod_range_free() {
  local iface ours hash
  ours=" $(node_bridge a) $(node_bridge b) "
  for iface in $(ip -4 -o addr show | awk 'index($4, "10.244.") == 1 { print $2 }'); do
    case $ours in *" $iface "*) continue ;; esac
    hash=$(printf %s "$iface" | sed -n 's/^sk\([0-9a-f]\{6\}\)[ab]$/\1/p')
    [ -n "$hash" ] || die "10.244.0.0/16 is already used on the host by $iface, which is not a lab's"
    # (the patterns come from a file so grep's own command line does not match them)
    if grep -qsF -f <(printf -- '--hostname-override=streamops-%s-\n/run/streamops-lab-%s/k8s-\n' "$hash" "$hash") \
      /proc/[0-9]*/cmdline; then
      die "10.244.0.0/16 is used by another running lab clone ($iface); take that lab down first"
    fi
    say "reclaiming $iface, left by a lab whose nodes no longer run"
    ip link delete "$iface" 2> /dev/null || true
    local h
    for h in $(cgroup_hierarchies) /sys/fs/cgroup/unified; do
      [ ! -d "$h/streamops-lab-$hash-k8s-${iface: -1}" ] ||
        find "$h/streamops-lab-$hash-k8s-${iface: -1}" -depth -type d -exec rmdir {} \; 2> /dev/null || true
    done
  done
}

setup_bridge() {
  local n=$1 br; br=$(node_bridge "$n")
  ip link show "$br" > /dev/null 2>&1 || ip link add name "$br" type bridge
  [[ $(ip -4 -o addr show dev "$br") == *" $(node_ip "$n")/24 "* ]] || ip addr add "$(node_ip "$n")/24" dev "$br"
  ip link set "$br" up
}

# The kubelet's cgroup root must exist in every v1 hierarchy before it starts; cpuset needs its
# cpus/mems copied from the parent or nothing can join it.
cgroup_hierarchies() {
  awk '$3 == "cgroup" { print $2 }' /proc/self/mounts | sort -u
}
setup_cgroups() {
  local n=$1 h d
  for h in $(cgroup_hierarchies); do
    d=$h/$(node_cgroup "$n")
    [ -d "$d" ] || mkdir "$d"
    if [ -f "$h/cpuset.cpus" ]; then
      [ -n "$(cat "$d/cpuset.cpus")" ] || cat "$h/cpuset.cpus" > "$d/cpuset.cpus"
      [ -n "$(cat "$d/cpuset.mems")" ] || cat "$h/cpuset.mems" > "$d/cpuset.mems"
    fi
  done
}
remove_cgroups() {
  local n=$1 h d
  for h in $(cgroup_hierarchies) /sys/fs/cgroup/unified; do
    d=$h/$(node_cgroup "$n")
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2> /dev/null || say "cgroup $d still in use; left in place"
  done
}

save_sysctls() {
  [ -f "$SYSCTL_SAVED" ] && return 0
  local s
  for s in "${KUBELET_SYSCTLS[@]}"; do echo "$s=$(cat "/proc/sys/$s")"; done > "$SYSCTL_SAVED.tmp"
  mv "$SYSCTL_SAVED.tmp" "$SYSCTL_SAVED"
}
restore_sysctls() {
  [ -f "$SYSCTL_SAVED" ] || return 0
  local kv
  while IFS= read -r kv; do
    [ -n "$kv" ] || continue
    echo "${kv#*=}" > "/proc/sys/${kv%%=*}" 2> /dev/null || say "could not restore ${kv%%=*}"
  done < "$SYSCTL_SAVED"
  rm -f "$SYSCTL_SAVED"
}

# ---------------------------------------------------------------------------------- images ----

# Pause: a static busybox whose entrypoint sleeps (practically) forever; CRI stops it with SIGKILL.
build_pause_image() {
  local out=$IMAGES/k8s-pause.tar dir=$IMAGES/build-pause
  [ -s "$out" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/etc" "$dir/dev" "$dir/proc" "$dir/sys"
  cp /bin/busybox "$dir/bin/busybox"
  ln -s busybox "$dir/bin/sleep"; ln -s busybox "$dir/bin/sh"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
  "$PYTHON" "$HERE/image.py" "$out" --tag "$IMAGE_PAUSE" --layer "$dir" \
    --entrypoint '["/bin/sleep", "2147483647"]' > /dev/null
  rm -rf "$dir"
}

# The consumer package's files (tracked or not, less what its .gitignore leaves out, less its
# tests): what the image key is a hash of and what pip builds from.
consumer_files() {
  [ -d "$ROOT/consumer" ] || return 0
  (cd "$ROOT" && git ls-files --cached --others --exclude-standard -- consumer |
    grep -v -e '^consumer/tests/' -e '/__pycache__/' -e '\.pyc$' | while read -r f; do [ -f "$f" ] && echo "$f"; done |
    LC_ALL=C sort)
}

# streamops-lab/consumer:1 = three layers: docker.sh's Python rootfs (Debian bookworm's python3
# 3.11); confluent-kafka; and, when consumer/pyproject.toml exists, the repo's streamops_consumer.
# Both are installed by the venv's pip (the same CPython 3.11 ABI) with --target
# /usr/lib/python3/dist-packages. The image is keyed on the consumer's files, so an edit there
# gives a new image at the next `up`; only its small top layer is new to containerd then.
consumer_key() {
  local base=$IMAGES/python-rootfs.tar
  {
    echo "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
    stat -c '%s %Y' "$base" 2> /dev/null || true
    sha256sum "$HERE/image.py"
    (cd "$ROOT" && consumer_files | while read -r f; do sha256sum "$f"; done)
  } | sha256sum | cut -c1-16
}
pip_target() {  # DIR PIP-ARGS...: pip install --target DIR/usr/lib/python3/dist-packages
  local dir=$1; shift
  rm -rf "$dir" && mkdir -p "$dir/usr/lib/python3/dist-packages"
  "$VENV_PIP" install --quiet --disable-pip-version-check --no-warn-script-location --no-compile \
    --prefer-binary --target "$dir/usr/lib/python3/dist-packages" "$@" > "$IMAGES/k8s-consumer-pip.log" 2>&1 ||
    { tail -20 "$IMAGES/k8s-consumer-pip.log"; die "pip install $* for the consumer image failed"; }
  # Console scripts would point at the venv's python: use `python3 -m ...` in the image.
  rm -rf "$dir/usr/lib/python3/dist-packages/bin"
}
build_consumer_image() {
  local base=$IMAGES/python-rootfs.tar
  if [ ! -s "$base" ]; then
    say "no $base yet: building it with docker.sh install"
    "$LABDIR/docker.sh" install
  fi
  local key; key=$(consumer_key)
  CONSUMER_TAR=$IMAGES/k8s-consumer-$key.tar
  [ -s "$CONSUMER_TAR" ] && return 0
  [ -x "$VENV_PIP" ] || die "no $VENV_PIP (the repo's venv) to install the image's Python packages"
  local ck=$IMAGES/k8s-layer-confluent-kafka-$CONFLUENT_KAFKA_VERSION
  if [ ! -d "$ck" ]; then
    pip_target "$ck.tmp" "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
    mv "$ck.tmp" "$ck"
  fi
  local layers=(--layer "$base" --layer "$ck") top=$IMAGES/build-consumer src=$IMAGES/build-consumer-src
  rm -rf "$src"
  if [ -f "$ROOT/consumer/pyproject.toml" ]; then
    # pip builds a local project in place: build from a copy, never in the colleague's tree.
    mkdir -p "$src"
    (cd "$ROOT" && consumer_files | tar -cf - -T -) | tar -xf - -C "$src"
    pip_target "$top" --no-deps "$src/consumer"
    layers+=(--layer "$top")
  else
    say "consumer/pyproject.toml not there yet: image without streamops_consumer"
  fi
  "$PYTHON" "$HERE/image.py" "$CONSUMER_TAR" --tag "$IMAGE_CONSUMER" "${layers[@]}" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env PYTHONUNBUFFERED=1 \
    --cmd '["python3"]' > /dev/null
  rm -rf "$top" "$src"
  find "$IMAGES" -maxdepth 1 -name 'k8s-consumer-*.tar' ! -name "k8s-consumer-$key.tar" -delete
}

# import_image NODE REF TAR: into the node's containerd (k8s.io namespace) unless that very tar
# is already there (a stamp in the node's containerd root remembers which tar each ref came from).
ctr_n() { "$CTR" -a "$(node_sock "$1")" -n k8s.io "${@:2}"; }
import_image() {
  local n=$1 ref=$2 tar=$3 stamp
  stamp=$(node_dir "$n")/containerd/root/lab-images
  local want; want="$ref $(basename "$tar")"
  if grep -qxF -- "$want" "$stamp" 2> /dev/null && grep -qxF -- "$(full_ref "$ref")" <<< "$(ctr_n "$n" images ls -q)"; then
    return 0
  fi
  # An import can race containerd's collection of the image it replaces ("parent snapshot ... does not
  # exist", seen after the consumer image changed); a second import unpacks afresh.
  ctr_n "$n" images import "$tar" > /dev/null 2>> "$LOGS/images.log" ||
    { sleep 1; ctr_n "$n" images import "$tar" > /dev/null 2>> "$LOGS/images.log"; } ||
    die "ctr images import $tar into node $n failed (log: $LOGS/images.log)"
  # The CRI keeps a sha256:<config> name per image it saw; drop those of images no tag points
  # at any more (replaced consumer images), so containerd can collect their content.
  local tagged id
  tagged=$(ctr_n "$n" images ls | awk 'NR > 1 && $1 !~ /^sha256:/ { print $3 }')
  for id in $(ctr_n "$n" images ls | awk 'NR > 1 && $1 ~ /^sha256:/ { print $1 " " $3 }' |
    while read -r name digest; do grep -qxF "$digest" <<< "$tagged" || echo "$name"; done); do
    ctr_n "$n" images rm "$id" > /dev/null 2>&1 || true
  done
  { grep -vF -- "$ref " "$stamp" 2> /dev/null || true; echo "$want"; } > "$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
}
# Both nodes at once (while the apiserver starts).
import_images() {
  local n pids=() p rc=0
  for n in "${NODES[@]}"; do
    wait_for "containerd $n" 30 "containerd-$n" "$(m_containerd "$n")" containerd_ready "$n"
  done
  for n in "${NODES[@]}"; do
    { import_image "$n" "$IMAGE_PAUSE" "$IMAGES/k8s-pause.tar"; import_image "$n" "$IMAGE_CONSUMER" "$CONSUMER_TAR"; } &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || die "image import failed (log: $LOGS/images.log)"
}
full_ref() { case $1 in docker.io/*) echo "$1" ;; */*) echo "docker.io/$1" ;; *) echo "docker.io/library/$1" ;; esac; }

# --------------------------------------------------------------------------------- starting ----

start_etcd() {
  pid_of etcd "$(m_etcd)" > /dev/null && return 0
  mkdir -p "$KL/etcd-data"; chmod 700 "$KL/etcd-data"
  start_proc etcd "$ETCD" --name=lab "$(m_etcd)" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="lab=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level=warn \
    --quota-backend-bytes=2147483648 --snapshot-count=10000
}
etcd_ready() { [[ $(curl -sf "http://127.0.0.1:$ETCD_PORT/health") == *'"health":"true"'* ]]; }

start_apiserver() {
  pid_of apiserver "$(m_apiserver)" > /dev/null && return 0
  # Its own mount namespace, where /etc/hosts maps the node names to 127.0.0.1: the apiserver
  # reaches the kubelets (listening on 127.0.0.1 only) by Hostname for logs/exec/port-forward.
  # shellcheck disable=SC2016  # expanded by the inner sh, inside the new mount namespace
  start_proc apiserver unshare --mount --propagation private \
    sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$CONF/apiserver-hosts" \
    "$BIN/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --service-cluster-ip-range="$SERVICE_CIDR" \
    --client-ca-file="$PKI/ca.crt" "$(m_apiserver)" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=Hostname,InternalIP \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --endpoint-reconciler-type=none --profiling=false --v=0
}
api_ready() { [ "$(curl -sf --cacert "$PKI/ca.crt" "$(api_url)/readyz")" = ok ]; }

start_cm() {
  pid_of controller-manager "$(m_cm)" > /dev/null && return 0
  start_proc controller-manager "$BIN/kube-controller-manager" "$(m_cm)" \
    --authentication-kubeconfig="$CONF/controller-manager.kubeconfig" --authorization-kubeconfig="$CONF/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$CM_PORT" --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false --profiling=false --v=0
}

start_scheduler() {
  pid_of scheduler "$(m_scheduler)" > /dev/null && return 0
  start_proc scheduler "$BIN/kube-scheduler" "$(m_scheduler)" \
    --authentication-kubeconfig="$CONF/scheduler.kubeconfig" --authorization-kubeconfig="$CONF/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false --v=0
}

start_containerd() {
  local n=$1
  pid_of "containerd-$n" "$(m_containerd "$n")" > /dev/null && return 0
  start_proc "containerd-$n" /usr/bin/containerd "$(m_containerd "$n")"
}
containerd_ready() { "$CTR" -a "$(node_sock "$1")" version; }

# NODE_SINCE[X]: when this run started node X's kubelet (a status older than that is stale:
# the Node object keeps its last Ready condition in etcd across a down/up).
declare -A NODE_SINCE=()
start_kubelet() {
  local n=$1 name; name=$(node_name "$n")
  pid_of "kubelet-$n" "$(m_kubelet "$n")" > /dev/null && return 0
  NODE_SINCE[$n]=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  start_proc "kubelet-$n" "$BIN/kubelet" "$(m_kubelet "$n")" \
    --kubeconfig="$(node_dir "$n")/kubelet.kubeconfig" --hostname-override="$name" \
    --root-dir="$(kubelet_root "$n")" --cert-dir="$(node_dir "$n")/kubelet-pki" \
    --node-ip="$(node_ip "$n")" --node-labels="$REGION_LABEL=$n" --v=0
}

# Every kubelet serves its device-plugin registry on one fixed path (no flag moves it off
# /var/lib/kubelet): two starting at once race for it, and one dies with "bind: address already in
# use". So the kubelets start one at a time, each once the one before has bound that socket (or died:
# wait_nodes then shows its log).
DEVICE_PLUGIN_SOCK=/var/lib/kubelet/device-plugins/kubelet.sock
# A kubelet has bound it once the socket there is newer than its start (to the nanosecond: both
# kubelets start within a second). Alive is checked by the pid it wrote: for a moment that pid is
# still the bash that execs the kubelet, which pid_of does not take for the kubelet yet.
socket_ns() { local t; t=$(stat -c %.9Y "$DEVICE_PLUGIN_SOCK" 2> /dev/null) && echo "${t/./}" || echo 0; }
start_kubelets() {
  local n since pid deadline
  for n in "${NODES[@]}"; do
    pid_of "kubelet-$n" "$(m_kubelet "$n")" > /dev/null && continue
    since=$(date +%s%N)
    start_kubelet "$n"
    pid=$(cat "$PIDS/kubelet-$n.pid")
    deadline=$((SECONDS + 30))
    until [ -S "$DEVICE_PLUGIN_SOCK" ] && [ "$(socket_ns)" -ge "$since" ]; do
      [ -d "/proc/$pid" ] && [ $SECONDS -lt $deadline ] || break
      sleep 0.1
    done
  done
}

# Ready (reported by the kubelet this run started, if it started one), and none of the node
# lifecycle taints (not-ready/unreachable) left: pods schedule now.
nodes_ready() {
  local out; out=$(kc get nodes -l "!type" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{" "}{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}{" "}{.spec.taints[*].key}{"\n"}{end}') || return 1
  local n line name ready beat taints
  for n in "${NODES[@]}"; do
    line=$(grep "^$(node_name "$n") " <<< "$out") || return 1
    read -r name ready beat taints <<< "$line"
    [ "$ready" = True ] || return 1
    case " $taints" in *" node.kubernetes.io/"*) return 1 ;; esac
    [ -z "${NODE_SINCE[$n]:-}" ] || [[ ! $beat < ${NODE_SINCE[$n]} ]] || return 1
  done
}
wait_nodes() {
  local deadline=$((SECONDS + ${K8S_LAB_NODE_TIMEOUT:-120})) n
  until nodes_ready; do
    for n in "${NODES[@]}"; do
      pid_of "kubelet-$n" "$(m_kubelet "$n")" > /dev/null || { tail -25 "$LOGS/kubelet-$n.log" >&2; die "kubelet $n exited"; }
    done
    [ $SECONDS -lt $deadline ] || { kc get nodes -o wide >&2 || true; die "nodes not Ready (logs: $LOGS/kubelet-*.log)"; }
    sleep 0.2
  done
}

# kwok: fake nodes (annotated kwok.x-k8s.io/node=fake, tainted so nothing lands there by chance).
# Their node and pod addresses are fake: taken from the blackholed pod range, off our bridges, so a
# client that tries one gets "no route" instead of a packet leaving the machine (kwok's defaults
# are 196.168.0.1 and 10.0.0.1/24).
KWOK_PER_REGION=2
KWOK_NODE_IP=10.244.255.254
KWOK_POD_CIDR=10.244.128.0/18
start_kwok() {
  build_kwok
  kwok_stages
  if ! pid_of kwok "$(m_kwok)" > /dev/null; then
    start_proc kwok "$BIN/kwok" "$(m_kwok)" --config="$CONF/kwok-stages.yaml" \
      --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --server-address="127.0.0.1:$KWOK_PORT" --node-lease-duration-seconds=40 \
      --node-ip="$KWOK_NODE_IP" --cidr="$KWOK_POD_CIDR"
  fi
  local n i name
  for n in "${NODES[@]}"; do
    for i in $(seq 1 $KWOK_PER_REGION); do
      name=$(node_name "$n")-fake-$i
      kc get node "$name" > /dev/null 2>&1 && continue
      kc apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: $name, kubernetes.io/role: agent, $REGION_LABEL: $n}
spec:
  taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]
EOF
    done
  done
  local deadline=$((SECONDS + 60))
  until [ "$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" -ge $((KWOK_PER_REGION * ${#NODES[@]})) ]; do
    pid_of kwok "$(m_kwok)" > /dev/null || { tail -25 "$LOGS/kwok.log" >&2; die "kwok exited"; }
    [ $SECONDS -lt $deadline ] || die "kwok nodes not Ready after 60s (log: $LOGS/kwok.log)"
    sleep 0.2
  done
}

write_env() {
  local n
  {
    echo "KUBECONFIG=$ADMIN_KUBECONFIG"
    echo "K8S_AUTH_KUBECONFIG=$ADMIN_KUBECONFIG"
    echo "K8S_API_SERVER=$(api_url)"
    echo "K8S_CA_CERT=$PKI/ca.crt"
    echo "K8S_VERSION=$K8S_VERSION"
    echo "KUBECTL=$BIN/kubectl"
    echo "K8S_CTR=$CTR"
    echo "K8S_REGIONS=$(IFS=,; echo "${NODES[*]}")"
    echo "K8S_REGION_LABEL=$REGION_LABEL"
    for n in "${NODES[@]}"; do
      echo "K8S_NODE_${n^^}=$(node_name "$n")"
      echo "K8S_NODE_IP_${n^^}=$(node_ip "$n")"
      echo "K8S_CONTAINERD_${n^^}=$(node_sock "$n")"
    done
    echo "K8S_CTR_NAMESPACE=k8s.io"
    echo "K8S_CONSUMER_IMAGE=$IMAGE_CONSUMER"
    echo "K8S_PAUSE_IMAGE=$IMAGE_PAUSE"
    echo "K8S_SERVICE_CIDR=$SERVICE_CIDR"
    echo "K8S_POD_CIDR=$POD_CIDR"
    if pid_of kwok "$(m_kwok)" > /dev/null; then
      echo "K8S_KWOK=1"
      echo "K8S_KWOK_NODES=$(kc get nodes -l type=kwok -o jsonpath='{.items[*].metadata.name}' | tr ' ' ,)"
      echo "K8S_KWOK_TAINT=kwok.x-k8s.io/node=fake:NoSchedule"
    else
      echo "K8S_KWOK=0"
    fi
  } > "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_up() {
  local kwok=${K8S_LAB_KWOK:-0}
  [ "${1:-}" = --kwok ] && kwok=1
  local t0; t0=$(date +%s%N)
  # The routes before anything else (see add_blackholes).
  timed "blackhole routes" add_blackholes
  cmd_install
  cmd_build
  ensure_state
  timed "pki + configs" eval 'make_pki; render_configs'
  check_pod_range_free
  start_etcd
  local n
  for n in "${NODES[@]}"; do setup_bridge "$n"; setup_cgroups "$n"; start_containerd "$n"; done
  # Images are made (cold: once) while etcd and the containerds start.
  timed "images built" eval 'build_pause_image; build_consumer_image'
  timed "etcd ready" wait_for "etcd health" 60 etcd "$(m_etcd)" etcd_ready
  start_apiserver
  timed "images imported" import_images
  timed "apiserver ready" wait_for "apiserver /readyz" 120 apiserver "$(m_apiserver)" api_ready
  start_cm
  start_scheduler
  save_sysctls
  start_kubelets
  timed "nodes ready" wait_nodes
  # Pods need the namespace's default ServiceAccount, which the controller-manager makes.
  timed "default serviceaccount" wait_for "default ServiceAccount" 60 controller-manager "$(m_cm)" kc -n default get serviceaccount default
  if [ "$kwok" = 1 ]; then
    timed "kwok nodes" start_kwok
  elif ! pid_of kwok "$(m_kwok)" > /dev/null; then
    # Fake nodes of an earlier `up --kwok` would linger NotReady in the regions: gone without kwok.
    kc delete nodes -l type=kwok --wait=false > /dev/null 2>&1 || true
  fi
  write_env
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  say "$(printf 'up in %d.%03ds; environment in %s' $((ms / 1000)) $((ms % 1000)) "$ENV_FILE")"
}

# ---------------------------------------------------------------------------------- stopping ----

# Pods on the real nodes are deleted through the API while everything runs (the kubelets stop
# their containers, tear down their networks and remove their sandboxes); the controller-manager
# and scheduler are stopped first so nothing replaces them. What is left after that is ended
# through each node's containerd.
delete_pods() {
  pid_of apiserver "$(m_apiserver)" > /dev/null && api_ready || return 0
  local n sel=() left
  for n in "${NODES[@]}"; do
    pid_of "kubelet-$n" "$(m_kubelet "$n")" > /dev/null || continue
    kc delete pods -A --field-selector "spec.nodeName=$(node_name "$n")" --grace-period=2 --wait=false \
      > /dev/null 2>&1 || true
    sel+=("$(node_name "$n")")
  done
  [ ${#sel[@]} -gt 0 ] || return 0
  local deadline=$((SECONDS + ${K8S_LAB_DRAIN_TIMEOUT:-45}))
  while :; do
    left=0
    for n in "${sel[@]}"; do
      left=$((left + $(kc get pods -A --field-selector "spec.nodeName=$n" -o name 2> /dev/null | wc -l)))
    done
    [ "$left" -gt 0 ] || break
    if [ $SECONDS -ge $deadline ]; then say "$left pod(s) still terminating; ending them through containerd"; break; fi
    sleep 0.3
  done
}

# After the kubelet: any task still running in the node's containerd is killed and deleted, so
# its shim exits.
reap_tasks() {
  local n=$1 id
  pid_of "containerd-$n" "$(m_containerd "$n")" > /dev/null || return 0
  for id in $(ctr_n "$n" tasks ls -q 2> /dev/null); do
    ctr_n "$n" tasks kill -s SIGKILL "$id" > /dev/null 2>&1 || true
  done
  for id in $(ctr_n "$n" tasks ls -q 2> /dev/null); do
    ctr_n "$n" tasks delete -f "$id" > /dev/null 2>&1 || true
  done
}

# After containerd: a shim still serving our containerd socket is ended by its pid, and whatever
# the node mounted (netns, rootfs, kubelet volumes) is unmounted.
reap_node() {
  local n=$1 pid sock; sock=$(node_sock "$n")
  # shellcheck disable=SC2013  # grep prints one /proc/PID/cmdline path per line: words are lines here
  for pid in $(grep -lF -- "$sock" /proc/[0-9]*/cmdline 2> /dev/null | cut -d/ -f3); do
    case $(readlink "/proc/$pid/exe" 2> /dev/null) in
      */containerd-shim*) say "ending leftover shim $pid of node $n"; kill -TERM "$pid" 2> /dev/null || true ;;
    esac
  done
  umount_below "$(node_run "$n")"
  umount_below "$(kubelet_root "$n")"
  umount_below "$(node_dir "$n")"
  # The kubelet links every container's log into /var/log/containers (a fixed path); those of
  # containers it had no time to collect point into our pod-logs folder.
  find /var/log/containers -maxdepth 1 -type l -lname "$(node_dir "$n")/pod-logs/*" -delete 2> /dev/null || true
}

cmd_down() {
  local purge=false
  [ "${1:-}" = --purge ] && purge=true
  rm -f "$ENV_FILE"
  # shellcheck disable=SC1090
  if [ -f "$STATE" ]; then . "$STATE"; fi
  local n
  timed "controllers stopped" stop_procs 10 kwok "$(m_kwok)" controller-manager "$(m_cm)" scheduler "$(m_scheduler)"
  timed "pods deleted" delete_pods
  timed "kubelets stopped" stop_procs 20 kubelet-a "$(m_kubelet a)" kubelet-b "$(m_kubelet b)"
  # shellcheck disable=SC2016  # eval'd by timed, in this shell
  timed "tasks ended" eval 'for n in "${NODES[@]}"; do reap_tasks "$n"; done'
  # Nothing needs the API any more: the control plane stops together with the containerds.
  timed "the rest stopped" stop_procs 20 containerd-a "$(m_containerd a)" containerd-b "$(m_containerd b)" \
    apiserver "$(m_apiserver)" etcd "$(m_etcd)"
  for n in "${NODES[@]}"; do reap_node "$n"; done
  for n in "${NODES[@]}"; do
    ! ip link show "$(node_bridge "$n")" > /dev/null 2>&1 || ip link del "$(node_bridge "$n")"
    remove_cgroups "$n"
    rm -rf "$(node_run "$n")/cni-ipam" "$(node_dir "$n")/pod-logs"   # every pod is gone by now
  done
  restore_sysctls
  del_blackholes
  if $purge; then
    say "purging etcd data and the nodes' state (binaries, certificates, images stay)"
    rm -rf "$KL/etcd-data" "$KL/nodes" "$STATE" "$CONF" "$LOGS" "$PIDS"
    for n in "${NODES[@]}"; do rm -rf "$(node_run "$n")"; done
  fi
  say "down"
}

cmd_status() {
  [ -f "$STATE" ] || { echo "k8s lab: not set up (no $STATE)"; return 3; }
  # shellcheck disable=SC1090
  . "$STATE"
  local rc=0 name marker pid n line
  for line in "etcd $(m_etcd) 127.0.0.1:$ETCD_PORT" "apiserver $(m_apiserver) 127.0.0.1:$APISERVER_PORT" \
    "controller-manager $(m_cm) 127.0.0.1:$CM_PORT" "scheduler $(m_scheduler) 127.0.0.1:$SCHEDULER_PORT" \
    "containerd-a $(m_containerd a) $(node_sock a)" "containerd-b $(m_containerd b) $(node_sock b)" \
    "kubelet-a $(m_kubelet a) 127.0.0.1:$KUBELET_PORT_A" "kubelet-b $(m_kubelet b) 127.0.0.1:$KUBELET_PORT_B" \
    "kwok $(m_kwok) 127.0.0.1:$KWOK_PORT"; do
    read -r name marker addr <<< "$line"
    if pid=$(pid_of "$name" "$marker"); then printf '%-19s pid %-7s %s\n' "$name" "$pid" "$addr"
    elif [ "$name" = kwok ]; then printf '%-19s (not started; up --kwok)\n' "$name"
    else printf '%-19s STOPPED\n' "$name"; rc=3; fi
  done
  if pid_of apiserver "$(m_apiserver)" > /dev/null && api_ready; then
    kc get nodes -L "$REGION_LABEL" -o wide 2>&1 | cut -c1-150
  fi
  for n in "${NODES[@]}"; do
    printf 'bridge %s %s: %s\n' "$(node_bridge "$n")" "$(node_subnet "$n")" \
      "$(ip link show "$(node_bridge "$n")" > /dev/null 2>&1 && echo present || echo absent)"
  done
  printf 'blackholes: %s\n' "$(ip route show type blackhole | tr '\n' ';')"
  echo "env file $ENV_FILE$([ -f "$ENV_FILE" ] || echo ' (missing)')"
  return $rc
}

usage() { sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

# Sourced (e.g. to debug one function): definitions only.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in -h | --help | help) usage ;; esac
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$KL"
# One changing k8s.sh at a time per clone (status and kubectl only read).
case $cmd in status | kubectl) ;; *) exec 9> "$LAB/k8s.lock"; flock 9 ;; esac
case $cmd in
  install) cmd_install ;;
  build) cmd_build ;;
  images) timed "images built" eval 'build_pause_image; build_consumer_image'; ls -l "$IMAGES"/k8s-*.tar >&2 ;;
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  kubectl) kc "$@" ;;
  *) usage ;;
esac
