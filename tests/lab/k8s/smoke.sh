#!/usr/bin/env bash
# End-to-end check of the Kubernetes lab (tests/lab/k8s.sh up first): on each region's real node,
# a hostNetwork pod of the consumer image imports confluent_kafka (and streamops_consumer when the
# image has it), then `kubectl logs` and `kubectl exec` are checked against it (and, with the lab's
# Kafka up, Kafka metadata fetched from inside it), and it is deleted.
# Then a pod on each node's pod network answers HTTP from the host on its pod IP and has its
# service account token mounted. With kwok (up --kwok), a pod on each region's fake nodes.
# Also checks that ctr sees the pod's container by id on that node's containerd (tests SIGKILL
# consumer processes that way). Prints how long each step took.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
[ -f "$ROOT/.lab/k8s.env" ] || { echo "smoke: no .lab/k8s.env; run tests/lab/k8s.sh up" >&2; exit 1; }
set -a; . "$ROOT/.lab/k8s.env"; [ ! -f "$ROOT/.lab/kafka.env" ] || . "$ROOT/.lab/kafka.env"; set +a
k() { "$KUBECTL" "$@"; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
now() { date +%s%N; }
ms_since() { echo $(( ($(now) - $1) / 1000000 )); }
NS=default
PODS=()
cleanup() {
  local p
  for p in "${PODS[@]}"; do k -n "$NS" delete pod "$p" --grace-period=0 --wait=false > /dev/null 2>&1 || true; done
}
trap cleanup EXIT

run_region() {
  local region=$1 pod=smoke-$1-$$ node_var=K8S_NODE_${1^^} sock_var=K8S_CONTAINERD_${1^^} t0
  PODS+=("$pod")
  t0=$(now)
  # The script prints a marker, then waits for a file `kubectl exec` creates (SIGTERM ends it).
  k -n $NS apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  labels: {app: lab-smoke}
spec:
  hostNetwork: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  nodeSelector: {$K8S_REGION_LABEL: $region}
  containers:
  - name: consumer
    image: $K8S_CONSUMER_IMAGE
    imagePullPolicy: IfNotPresent
    command:
    - python3
    - -c
    - |
      import importlib.util, os, signal, sys, time
      import confluent_kafka
      signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
      extra = "streamops_consumer=%s" % bool(importlib.util.find_spec("streamops_consumer"))
      print("smoke-ok confluent_kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], extra, flush=True)
      while not os.path.exists("/tmp/done"):
          time.sleep(0.1)
      print("smoke-done", flush=True)
EOF
  k -n $NS wait --for=condition=Ready "pod/$pod" --timeout=90s > /dev/null ||
    { k -n $NS describe pod "$pod" >&2; fail "pod $pod not Ready"; }
  local node; node=$(k -n $NS get pod "$pod" -o jsonpath='{.spec.nodeName}')
  [ "$node" = "${!node_var}" ] || fail "pod $pod ran on $node, not ${!node_var}"
  echo "smoke: region $region: pod Ready on $node in $(ms_since "$t0") ms"

  t0=$(now)
  local logs _
  for _ in $(seq 50); do
    logs=$(k -n $NS logs "$pod") && grep -q smoke-ok <<< "$logs" && break
    sleep 0.1
  done
  grep -q smoke-ok <<< "$logs" || fail "kubectl logs $pod: '$logs'"
  echo "smoke: region $region: kubectl logs in $(ms_since "$t0") ms: $logs"

  t0=$(now)
  local out; out=$(k -n $NS exec "$pod" -- python3 -c 'import confluent_kafka, socket; print("exec-ok", socket.gethostname())') ||
    fail "kubectl exec into $pod"
  grep -q exec-ok <<< "$out" || fail "kubectl exec output: $out"
  echo "smoke: region $region: kubectl exec in $(ms_since "$t0") ms: $out"

  # With the lab's Kafka up: the hostNetwork pod reaches its brokers on 127.0.0.1.
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    t0=$(now)
    out=$(k -n $NS exec "$pod" -- python3 -c "from confluent_kafka.admin import AdminClient; print('brokers', len(AdminClient({'bootstrap.servers': '$KAFKA_BOOTSTRAP_SERVERS'}).list_topics(timeout=15).brokers))") ||
      fail "Kafka metadata from $pod"
    echo "smoke: region $region: Kafka $KAFKA_BOOTSTRAP_SERVERS from the pod in $(ms_since "$t0") ms: $out"
  fi

  # The container is visible by id on the node's own containerd (what tests use to SIGKILL it).
  local cid; cid=$(k -n $NS get pod "$pod" -o jsonpath='{.status.containerStatuses[0].containerID}')
  cid=${cid#containerd://}
  grep -q "^$cid " <<< "$("$K8S_CTR" -a "${!sock_var}" -n k8s.io tasks ls)" ||
    fail "container $cid not a task on ${!sock_var}"
  echo "smoke: region $region: container ${cid:0:12} is a task on ${!sock_var}"

  t0=$(now)
  k -n $NS exec "$pod" -- python3 -c 'open("/tmp/done", "w").close()'
  k -n $NS wait --for=jsonpath='{.status.phase}'=Succeeded "pod/$pod" --timeout=30s > /dev/null ||
    fail "pod $pod did not succeed"
  grep -q smoke-done <<< "$(k -n $NS logs "$pod")" || fail "no smoke-done in the logs of $pod"
  echo "smoke: region $region: Succeeded in $(ms_since "$t0") ms"

  t0=$(now)
  k -n $NS delete pod "$pod" --wait=true --timeout=30s > /dev/null
  echo "smoke: region $region: deleted in $(ms_since "$t0") ms"
}

# A pod on the pod network (the node's CNI bridge): its IP is in the node's /24 and the host
# reaches it there (an HTTP server in the pod, fetched with curl from the host).
run_pod_network() {
  local region=$1 pod=smoke-net-$1-$$ node_ip_var=K8S_NODE_IP_${1^^} t0 ip
  PODS+=("$pod")
  t0=$(now)
  k -n $NS apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  labels: {app: lab-smoke}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {$K8S_REGION_LABEL: $region}
  containers:
  - name: web
    image: $K8S_CONSUMER_IMAGE
    imagePullPolicy: IfNotPresent
    command: [python3, -c, "import http.server, signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); http.server.HTTPServer(('0.0.0.0', 8080), http.server.SimpleHTTPRequestHandler).serve_forever()"]
    workingDir: /etc
    readinessProbe: {httpGet: {path: /hostname, port: 8080}, periodSeconds: 1}
EOF
  k -n $NS wait --for=condition=Ready "pod/$pod" --timeout=90s > /dev/null ||
    { k -n $NS describe pod "$pod" >&2; fail "pod $pod not Ready"; }
  ip=$(k -n $NS get pod "$pod" -o jsonpath='{.status.podIP}')
  [ "${ip%.*}" = "${!node_ip_var%.*}" ] || fail "pod IP $ip not in the /24 of node IP ${!node_ip_var}"
  grep -q bookworm <<< "$(curl -sf --max-time 5 "http://$ip:8080/os-release")" || fail "no answer from http://$ip:8080"
  # The projected service account token (needs the controller-manager's kube-root-ca.crt).
  k -n $NS exec "$pod" -- python3 -c 'import os; d = "/var/run/secrets/kubernetes.io/serviceaccount"; assert {"token", "ca.crt", "namespace"} <= set(os.listdir(d))' ||
    fail "no service account token in $pod"
  echo "smoke: region $region: pod-network pod $ip Ready and answering in $(ms_since "$t0") ms"
  k -n $NS delete pod "$pod" --wait=true --timeout=30s > /dev/null
}

t_all=$(now)
IFS=, read -ra regions <<< "$K8S_REGIONS"
for r in "${regions[@]}"; do run_region "$r"; done
for r in "${regions[@]}"; do run_pod_network "$r"; done
# kwok fake nodes (up --kwok): a pod tolerating their taint runs there "at once", with a fake IP.
if [ "${K8S_KWOK:-0}" = 1 ]; then
  for r in "${regions[@]}"; do
    pod=smoke-kwok-$r-$$; PODS+=("$pod"); t0=$(now)
    k -n $NS apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $pod, labels: {app: lab-smoke}}
spec:
  nodeSelector: {type: kwok, $K8S_REGION_LABEL: $r}
  tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
  containers: [{name: c, image: $K8S_CONSUMER_IMAGE, imagePullPolicy: IfNotPresent}]
EOF
    k -n $NS wait --for=condition=Ready "pod/$pod" --timeout=30s > /dev/null || fail "kwok pod $pod not Ready"
    echo "smoke: region $r: pod on fake node $(k -n $NS get pod "$pod" -o jsonpath='{.spec.nodeName} {.status.podIP}') Ready in $(ms_since "$t0") ms"
    k -n $NS delete pod "$pod" --wait=true --timeout=30s > /dev/null
  done
fi
echo "smoke: OK (${#regions[@]} regions) in $(ms_since "$t_all") ms"
