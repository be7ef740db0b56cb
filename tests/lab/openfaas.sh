#!/usr/bin/env bash
# OpenFaaS part of the lab, on the lab's Kubernetes (tests/lab/k8s.sh up first): the real OpenFaaS
# gateway (Go module proxy, pinned pseudo-version, patched to listen on 127.0.0.1), our own small
# provider on the provider SDK (tests/lab/openfaas/provider, see tests/lab/openfaas/README.md),
# Debian's Prometheus scraping the gateway (the gateway's invocation counts come from it), and the
# function image streamops-lab/fn:1 imported into both nodes' containerd.
#
#   tests/lab/openfaas.sh install          Prometheus from Debian's packages (apt-get download, unpacked)
#   tests/lab/openfaas.sh build            gateway and provider into .lab/openfaas/bin (skipped when built)
#   tests/lab/openfaas.sh images           only make the function image tar (up makes and imports it)
#   tests/lab/openfaas.sh up               start what is not running, write .lab/openfaas.env
#   tests/lab/openfaas.sh down [--purge]   every process stopped by its pid; --purge also deletes the
#                                          functions and secrets in openfaas-fn and Prometheus' data
#   tests/lab/openfaas.sh status           what runs, on which port, the functions
#
# Everything listens on 127.0.0.1 (ports picked free once, kept in .lab/openfaas/state.env), with
# basic auth (user admin, a generated password kept in .lab/openfaas/secrets). Processes are only
# ever ended by the pids this script wrote. Functions stay in Kubernetes across a down/up, as they
# would with a real gateway restart; k8s.sh down removes their pods with everything else.
set -euo pipefail

# k8s.sh's helpers, sourced for their definitions only (it returns before doing anything): the
# process handling by pid file + command-line marker (start_proc, pid_of, stop_procs, wait_for),
# free-port picking across the lab's state files, the nodes' containerd image import, kubectl.
# shellcheck source=k8s.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/k8s.sh"

OF_HERE=$LABDIR/openfaas
OF=$LAB/openfaas
OF_BIN=$OF/bin
OF_CONF=$OF/conf
OF_SECRETS=$OF/secrets
OF_STATE=$OF/state.env
OF_ENV=$LAB/openfaas.env
PIDS=$OF/run     # k8s.sh's process helpers read these two
LOGS=$OF/logs

GATEWAY_MODULE=github.com/openfaas/faas/gateway
GATEWAY_VERSION=v0.0.0-20230317100158-e44448c5dca2   # MIT at this commit; later ones are refused
GATEWAY_COMMIT=e44448c5dca2
FN_NAMESPACE=openfaas-fn
IMAGE_FN=streamops-lab/fn:1
OF_USER="admin"
PROMETHEUS=$OF/prometheus/usr/bin/prometheus

say() { printf '[openfaas.sh] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------- install --

# Prometheus 2.42 from Debian 12: the .deb fetched with apt-get download and unpacked (no service
# is installed or started, no user made); only its binary is used.
install_prometheus() {
  local have; have=$("$PROMETHEUS" --version 2> /dev/null | head -1) || have=""
  [[ $have == "prometheus, version "* ]] && return 0
  local dl=$OF/apt
  rm -rf "$dl" && mkdir -p "$dl"
  (cd "$dl" && apt-get download prometheus) > "$OF/apt.log" 2>&1 || { tail "$OF/apt.log"; die "apt-get download prometheus failed"; }
  rm -rf "$OF/prometheus.tmp" && mkdir -p "$OF/prometheus.tmp"
  dpkg-deb -x "$dl"/prometheus_*.deb "$OF/prometheus.tmp"
  rm -rf "$OF/prometheus" "$dl" && mv "$OF/prometheus.tmp" "$OF/prometheus"
  "$PROMETHEUS" --version 2>&1 | head -1 >&2
}

of_install() {
  mkdir -p "$OF"
  command -v patch > /dev/null || die "patch not found (apt-get install patch)"
  timed "prometheus (debian)" install_prometheus
}

# ------------------------------------------------------------------------------------ build --

gateway_key() {
  { echo "$GATEWAY_MODULE@$GATEWAY_VERSION -mod=mod -s -w -trimpath"; cat "$OF_HERE/gateway.patch"; } | sha256sum | cut -c1-16
}
provider_key() {
  (cd "$OF_HERE/provider" && cat go.mod go.sum ./*.go; echo "-s -w -trimpath") | sha256sum | cut -c1-16
}
built() { [ -x "$OF_BIN/$1" ] && [ -f "$OF_BIN/.$1-key" ] && [ "$(cat "$OF_BIN/.$1-key")" = "$2" ]; }

# The gateway's module zip through the Go module proxy (go mod download in a scratch module), a
# writable copy without its empty vendor/ (or Go would insist on vendoring), our patch (listeners
# on 127.0.0.1 with ports from the environment; no panic when no Prometheus answers), -mod=mod.
build_gateway() {
  local key; key=$(gateway_key)
  built gateway "$key" && return 0
  local t0=$SECONDS scratch=$OF/build/fetch src=$OF/build/gateway-src dir
  mkdir -p "$scratch" "$OF_BIN"
  [ -f "$scratch/go.mod" ] || printf 'module streamops.lab/fetch\n\ngo 1.24.0\n' > "$scratch/go.mod"
  dir=$(cd "$scratch" && go mod download -json "$GATEWAY_MODULE@$GATEWAY_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -f "$dir/main.go" ] || die "go mod download $GATEWAY_MODULE@$GATEWAY_VERSION gave no source ($dir)"
  rm -rf "$src" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  if [ -d "$src/vendor" ]; then
    [ -z "$(find "$src/vendor" -type f ! -name modules.txt)" ] || die "the gateway's vendor/ is not empty any more: look before removing it"
    rm -rf "$src/vendor"
  fi
  patch -d "$src" -p1 --forward --quiet < "$OF_HERE/gateway.patch" > "$OF/build/patch.log" 2>&1 ||
    { cat "$OF/build/patch.log" >&2; die "gateway.patch does not apply to $GATEWAY_VERSION"; }
  local v=$GATEWAY_MODULE/version
  (cd "$src" && go build -mod=mod -p 2 -trimpath -ldflags "-s -w -X $v.Version=$GATEWAY_VERSION -X $v.GitCommitSHA=$GATEWAY_COMMIT" \
    -o "$OF_BIN/gateway.tmp" .) > "$OF/build/gateway.log" 2>&1 || { tail -30 "$OF/build/gateway.log" >&2; die "gateway build failed"; }
  mv "$OF_BIN/gateway.tmp" "$OF_BIN/gateway"
  echo "$key" > "$OF_BIN/.gateway-key"
  say "built the gateway in $((SECONDS - t0))s"
}

build_provider() {
  local key; key=$(provider_key)
  built provider "$key" && return 0
  local t0=$SECONDS
  mkdir -p "$OF_BIN" "$OF/build"
  (cd "$OF_HERE/provider" && go build -p 2 -trimpath -ldflags "-s -w" -o "$OF_BIN/provider.tmp" .) > "$OF/build/provider.log" 2>&1 ||
    { tail -30 "$OF/build/provider.log" >&2; die "provider build failed"; }
  mv "$OF_BIN/provider.tmp" "$OF_BIN/provider"
  echo "$key" > "$OF_BIN/.provider-key"
  say "built the provider in $((SECONDS - t0))s"
}

of_build() {
  if built gateway "$(gateway_key)" && built provider "$(provider_key)"; then return 0; fi
  command -v go > /dev/null || die "go not found (Go >= 1.24 is needed to build the gateway and the provider)"
  go_env   # k8s.sh's: the same module and build caches as the lab's Kubernetes (client-go is compiled there)
  timed "gateway built" build_gateway
  timed "provider built" build_provider
}

# ----------------------------------------------------------------------------------- images --

# streamops-lab/fn:1: docker.sh's Python rootfs plus one small layer with fn.py, keyed on both.
fn_key() {
  { stat -c '%s %Y' "$IMAGES/python-rootfs.tar" 2> /dev/null || true; sha256sum "$OF_HERE/fn/fn.py" "$HERE/image.py"; } | sha256sum | cut -c1-16
}
build_fn_image() {
  [ -s "$IMAGES/python-rootfs.tar" ] || { say "no python rootfs yet: docker.sh install builds it"; "$LABDIR/docker.sh" install; }
  local key; key=$(fn_key)
  FN_TAR=$IMAGES/openfaas-fn-$key.tar
  [ -s "$FN_TAR" ] && return 0
  local top=$IMAGES/build-openfaas-fn
  rm -rf "$top" && mkdir -p "$top/opt/streamops-fn"
  cp "$OF_HERE/fn/fn.py" "$top/opt/streamops-fn/fn.py"
  "$PYTHON" "$HERE/image.py" "$FN_TAR" --tag "$IMAGE_FN" --layer "$IMAGES/python-rootfs.tar" --layer "$top" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env PYTHONUNBUFFERED=1 --env PYTHONDONTWRITEBYTECODE=1 \
    --entrypoint '["python3", "/opt/streamops-fn/fn.py"]' > /dev/null
  rm -rf "$top"
  find "$IMAGES" -maxdepth 1 -name 'openfaas-fn-*.tar' ! -name "openfaas-fn-$key.tar" -delete
}
import_fn_image() {
  local n pids=() p rc=0
  for n in "${NODES[@]}"; do import_image "$n" "$IMAGE_FN" "$FN_TAR" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || die "function image import failed (log: $LOGS/images.log)"
}

# -------------------------------------------------------------------------------- state ----

OF_PORT_NAMES=(GATEWAY_PORT GATEWAY_METRICS_PORT PROVIDER_PORT PROMETHEUS_PORT)
of_state() {
  if [ ! -f "$OF_STATE" ]; then
    local ports i
    mapfile -t ports < <(pick_ports ${#OF_PORT_NAMES[@]})
    {
      echo "# Picked at first start; kept so restarts keep their addresses."
      for i in "${!OF_PORT_NAMES[@]}"; do echo "${OF_PORT_NAMES[$i]}=${ports[$i]}"; done
    } > "$OF_STATE.tmp"
    mv "$OF_STATE.tmp" "$OF_STATE"
    say "picked ports: $OF_STATE"
  fi
  # shellcheck disable=SC1090
  . "$OF_STATE"
}

# The gateway's (and provider's) basic-auth secrets folder: made once, kept.
of_credentials() {
  mkdir -p "$OF_SECRETS"; chmod 700 "$OF_SECRETS"
  [ -s "$OF_SECRETS/basic-auth-user" ] || printf '%s' "$OF_USER" > "$OF_SECRETS/basic-auth-user"
  if [ ! -s "$OF_SECRETS/basic-auth-password" ]; then
    openssl rand -hex 16 | tr -d '\n' > "$OF_SECRETS/basic-auth-password.tmp"
    chmod 600 "$OF_SECRETS/basic-auth-password.tmp"
    mv "$OF_SECRETS/basic-auth-password.tmp" "$OF_SECRETS/basic-auth-password"
  fi
  OF_PASSWORD=$(cat "$OF_SECRETS/basic-auth-password")
}

render_prometheus() {
  mkdir -p "$OF_CONF"
  sed -e "s|@GATEWAY_METRICS@|127.0.0.1:$GATEWAY_METRICS_PORT|g" "$OF_HERE/prometheus.yml.in" > "$OF_CONF/prometheus.yml.tmp"
  mv "$OF_CONF/prometheus.yml.tmp" "$OF_CONF/prometheus.yml"
}

# ---------------------------------------------------------------------------------- running --

m_provider() { echo "$OF_BIN/provider"; }
m_gateway() { echo "$OF_BIN/gateway"; }
m_prometheus() { echo "--storage.tsdb.path=$OF/prometheus-data"; }

# A process whose binary was rebuilt since it started (its /proc/PID/exe is "(deleted)") is
# stopped, so that up starts the new build.
restart_if_rebuilt() {
  local name=$1 marker=$2 pid
  pid=$(pid_of "$name" "$marker") || return 0
  [[ $(readlink "/proc/$pid/exe" 2> /dev/null) == *" (deleted)" ]] || return 0
  say "$name was rebuilt: restarting it"
  stop_procs 10 "$name" "$marker"
}

curl_ok() { curl -sf -o /dev/null --max-time 2 "$@"; }
auth() { printf '%s:%s' "$OF_USER" "$OF_PASSWORD"; }

start_prometheus() {
  pid_of prometheus "$(m_prometheus)" > /dev/null && return 0
  mkdir -p "$OF/prometheus-data"
  start_proc prometheus "$PROMETHEUS" --config.file="$OF_CONF/prometheus.yml" "$(m_prometheus)" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --storage.tsdb.retention.time=2d --log.level=warn
}

start_provider() {
  restart_if_rebuilt provider "$(m_provider)"
  pid_of provider "$(m_provider)" > /dev/null && return 0
  start_proc provider "$OF_BIN/provider" -listen "127.0.0.1:$PROVIDER_PORT" -kubeconfig "$ADMIN_KUBECONFIG" \
    -namespace "$FN_NAMESPACE" -secrets "$OF_SECRETS" -pull-policy Never -grace 2 -timeout 60s
}

# The gateway reads its configuration from the environment (gateway_port and metrics_port are
# our patch's); scale_from_zero: an invocation of a function at 0 replicas scales it to its
# com.openfaas.scale.min (default 1) and waits for a ready pod.
start_gateway() {
  restart_if_rebuilt gateway "$(m_gateway)"
  pid_of gateway "$(m_gateway)" > /dev/null && return 0
  start_proc gateway env gateway_port="$GATEWAY_PORT" metrics_port="$GATEWAY_METRICS_PORT" \
    functions_provider_url="http://127.0.0.1:$PROVIDER_PORT/" function_namespace="$FN_NAMESPACE" \
    basic_auth=true secret_mount_path="$OF_SECRETS/" scale_from_zero=true \
    faas_prometheus_host=127.0.0.1 faas_prometheus_port="$PROMETHEUS_PORT" \
    read_timeout=65s write_timeout=65s upstream_timeout=60s \
    "$OF_BIN/gateway"
}

write_env() {
  {
    echo "OPENFAAS_URL=http://127.0.0.1:$GATEWAY_PORT"
    echo "OPENFAAS_USERNAME=$OF_USER"
    echo "OPENFAAS_PASSWORD=$OF_PASSWORD"
    echo "OPENFAAS_NAMESPACE=$FN_NAMESPACE"
    echo "OPENFAAS_FN_IMAGE=$IMAGE_FN"
    echo "OPENFAAS_PROVIDER_URL=http://127.0.0.1:$PROVIDER_PORT"
    echo "OPENFAAS_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT"
    echo "OPENFAAS_GATEWAY_METRICS_URL=http://127.0.0.1:$GATEWAY_METRICS_PORT"
  } > "$OF_ENV.tmp"
  chmod 600 "$OF_ENV.tmp"
  mv "$OF_ENV.tmp" "$OF_ENV"
}

k8s_up() { [ -f "$LAB/k8s.env" ] && [ -s "$ADMIN_KUBECONFIG" ] && kc get --raw /readyz > /dev/null 2>&1; }

of_up() {
  local t0; t0=$(date +%s%N)
  k8s_up || die "the lab's Kubernetes is not up: run tests/lab/up k8s first"
  of_install
  of_build
  mkdir -p "$PIDS" "$LOGS"
  of_state
  of_credentials
  render_prometheus
  timed "function image built" build_fn_image
  start_prometheus
  start_provider
  timed "function image imported" import_fn_image
  timed "provider ready" wait_for "provider /healthz" 60 provider "$(m_provider)" curl_ok "http://127.0.0.1:$PROVIDER_PORT/healthz"
  start_gateway
  timed "gateway ready" wait_for "gateway /healthz" 60 gateway "$(m_gateway)" curl_ok -u "$(auth)" "http://127.0.0.1:$GATEWAY_PORT/healthz"
  timed "prometheus ready" wait_for "prometheus /-/ready" 60 prometheus "$(m_prometheus)" curl_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  write_env
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  say "$(printf 'up in %d.%03ds; gateway http://127.0.0.1:%s; environment in %s' $((ms / 1000)) $((ms % 1000)) "$GATEWAY_PORT" "$OF_ENV")"
}

of_down() {
  local purge=false
  [ "${1:-}" = --purge ] && purge=true
  rm -f "$OF_ENV"
  timed "stopped" stop_procs 10 gateway "$(m_gateway)" provider "$(m_provider)" prometheus "$(m_prometheus)"
  if $purge; then
    if k8s_up; then
      say "deleting the functions and secrets in $FN_NAMESPACE"
      kc -n "$FN_NAMESPACE" delete deployments,services -l faas_function --wait=false > /dev/null 2>&1 || true
      kc -n "$FN_NAMESPACE" delete secrets -l app.kubernetes.io/managed-by=openfaas > /dev/null 2>&1 || true
    fi
    say "purging Prometheus data, state and logs (binaries, credentials and images stay)"
    rm -rf "$OF/prometheus-data" "$OF_STATE" "$OF_CONF" "$LOGS" "$PIDS" "$OF/build"
  fi
  say "down"
}

of_status() {
  [ -f "$OF_STATE" ] || { echo "openfaas lab: not set up (no $OF_STATE)"; return 3; }
  # shellcheck disable=SC1090
  . "$OF_STATE"
  local rc=0 line name marker addr pid
  for line in "gateway $(m_gateway) http://127.0.0.1:$GATEWAY_PORT(metrics:$GATEWAY_METRICS_PORT)" \
    "provider $(m_provider) http://127.0.0.1:$PROVIDER_PORT" "prometheus $(m_prometheus) http://127.0.0.1:$PROMETHEUS_PORT"; do
    read -r name marker addr <<< "$line"
    if pid=$(pid_of "$name" "$marker"); then printf '%-11s pid %-7s %s\n' "$name" "$pid" "$addr"
    else printf '%-11s STOPPED\n' "$name"; rc=3; fi
  done
  if k8s_up; then
    kc -n "$FN_NAMESPACE" get deployments -l faas_function -o wide 2>&1 | cut -c1-150
  fi
  echo "env file $OF_ENV$([ -f "$OF_ENV" ] || echo ' (missing)')"
  return $rc
}

of_usage() { sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

[ $# -ge 1 ] || of_usage
cmd=$1; shift
case $cmd in -h | --help | help) of_usage ;; esac
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$OF"
case $cmd in status) ;; *) exec 9> "$LAB/openfaas.lock"; flock 9 ;; esac
case $cmd in
  install) of_install ;;
  build) of_build ;;
  images) timed "function image built" build_fn_image; ls -l "$FN_TAR" >&2 ;;
  up) of_up ;;
  down) of_down "$@" ;;
  status) of_status ;;
  *) of_usage ;;
esac
