#!/usr/bin/env bash
# End-to-end check of the OpenFaaS lab (tests/lab/openfaas.sh up first), through the real gateway
# with basic auth: deploy a function (streamops-lab/fn:1, FN_TRANSFORM=upper, pinned to region b)
# -> invoke it -> scale to 0 (no pod left) -> scale to 1 -> invoke -> the invocation count shows
# in GET /system/functions (from Prometheus) -> scale to 0 and invoke again (the gateway's scale
# from zero: the cold start) -> delete (404 after, no pod left). Also: wrong password is 401, an
# unknown namespace is refused. Prints how long each step took.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
for f in k8s.env openfaas.env; do
  [ -f "$ROOT/.lab/$f" ] || { echo "smoke: no .lab/$f; run tests/lab/up k8s openfaas" >&2; exit 1; }
done
set -a; . "$ROOT/.lab/k8s.env"; . "$ROOT/.lab/openfaas.env"; set +a
FN=smoke-$$
NS=$OPENFAAS_NAMESPACE
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
now() { date +%s%N; }
ms_since() { echo $(( ($(now) - $1) / 1000000 )); }
api() { curl -sS --max-time 30 -u "$OPENFAAS_USERNAME:$OPENFAAS_PASSWORD" "$@"; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"; }
pods() { "$KUBECTL" -n "$NS" get pods -l "faas_function=$FN" -o name | wc -l; }
cleanup() { api -o /dev/null -X DELETE "$OPENFAAS_URL/system/functions" -d "{\"functionName\": \"$FN\"}" 2> /dev/null || true; }
trap cleanup EXIT

# until GET /system/function/$FN shows KEY == VALUE (a missing key is 0), at most $3 seconds
wait_field() {
  local key=$1 want=$2 deadline=$((SECONDS + ${3:-60})) got
  while :; do
    got=$(api "$OPENFAAS_URL/system/function/$FN" | field "$key") || got=error
    [ "$got" = "$want" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "$FN: $key is $got, not $want, after ${3:-60}s"
    sleep 0.1
  done
}
wait_no_pods() {
  local deadline=$((SECONDS + 30))
  until [ "$(pods)" = 0 ]; do [ $SECONDS -lt $deadline ] || fail "pods of $FN still there after 30s"; sleep 0.2; done
}
invoke() {  # BODY WANT
  local out; out=$(curl -sS --max-time 120 -u "$OPENFAAS_USERNAME:$OPENFAAS_PASSWORD" --data-binary "$1" "$OPENFAAS_URL/function/$FN")
  [ "$out" = "$2" ] || fail "invoking $FN with '$1' answered '$out', not '$2'"
}

code=$(curl -s -o /dev/null -w '%{http_code}' -u "$OPENFAAS_USERNAME:wrong" "$OPENFAAS_URL/system/functions")
[ "$code" = 401 ] || fail "a wrong password got HTTP $code, not 401"
code=$(api -o /dev/null -w '%{http_code}' "$OPENFAAS_URL/system/functions?namespace=no-such-ns")
[ "$code" = 400 ] || fail "an unknown namespace got HTTP $code, not 400"
echo "smoke: wrong password 401, unknown namespace 400"

t0=$(now)
code=$(api -o /dev/null -w '%{http_code}' -X POST "$OPENFAAS_URL/system/functions" -d @- <<EOF
{"service": "$FN", "image": "$OPENFAAS_FN_IMAGE", "namespace": "$NS", "envVars": {"FN_TRANSFORM": "upper"},
 "constraints": ["$K8S_REGION_LABEL=b"], "labels": {"com.openfaas.scale.min": "1"}, "annotations": {"topic": "smoke"}}
EOF
)
[ "$code" = 202 ] || fail "deploy answered HTTP $code"
wait_field availableReplicas 1
node=$("$KUBECTL" -n "$NS" get pods -l "faas_function=$FN" -o jsonpath='{.items[0].spec.nodeName}')
[ "$node" = "$K8S_NODE_B" ] || fail "$FN ran on $node, not region b's $K8S_NODE_B"
echo "smoke: deployed, 1 replica available on $node in $(ms_since "$t0") ms"

t0=$(now); invoke "hello openfaas" "HELLO OPENFAAS"; echo "smoke: invoked through the gateway in $(ms_since "$t0") ms"

t0=$(now)
api -o /dev/null -X POST "$OPENFAAS_URL/system/scale-function/$FN" -d "{\"serviceName\": \"$FN\", \"replicas\": 0}"
wait_field replicas 0; wait_field availableReplicas 0
echo "smoke: scaled to 0 (available 0) in $(ms_since "$t0") ms"
wait_no_pods; echo "smoke: no pod left after $(ms_since "$t0") ms"

t0=$(now)
api -o /dev/null -X POST "$OPENFAAS_URL/system/scale-function/$FN" -d "{\"serviceName\": \"$FN\", \"replicas\": 1}"
wait_field availableReplicas 1
echo "smoke: scaled to 1, available in $(ms_since "$t0") ms"
t0=$(now); invoke "again" "AGAIN"; echo "smoke: invoked in $(ms_since "$t0") ms"

t0=$(now)
deadline=$((SECONDS + 15))
while :; do
  count=$(api "$OPENFAAS_URL/system/functions?namespace=$NS" |
    python3 -c 'import json, sys; print(int(sum(f.get("invocationCount", 0) for f in json.load(sys.stdin) if f["name"] == sys.argv[1])))' "$FN")
  [ "$count" -ge 2 ] && break
  [ $SECONDS -lt $deadline ] || fail "invocationCount of $FN is $count after 15s, not >= 2"
  sleep 0.2
done
echo "smoke: invocationCount $count in GET /system/functions after $(ms_since "$t0") ms"

api -o /dev/null -X POST "$OPENFAAS_URL/system/scale-function/$FN" -d "{\"serviceName\": \"$FN\", \"replicas\": 0}"
wait_field availableReplicas 0; wait_no_pods
t0=$(now); invoke "cold" "COLD"; echo "smoke: cold start from zero (gateway scale_from_zero) $(ms_since "$t0") ms"

t0=$(now)
code=$(api -o /dev/null -w '%{http_code}' -X DELETE "$OPENFAAS_URL/system/functions" -d "{\"functionName\": \"$FN\", \"namespace\": \"$NS\"}")
[ "$code" = 202 ] || fail "delete answered HTTP $code"
code=$(api -o /dev/null -w '%{http_code}' "$OPENFAAS_URL/system/function/$FN")
[ "$code" = 404 ] || fail "after delete GET answered HTTP $code, not 404"
wait_no_pods
echo "smoke: deleted, no pod left, in $(ms_since "$t0") ms"
trap - EXIT
echo "smoke: OK"
