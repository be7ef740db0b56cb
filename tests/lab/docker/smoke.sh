#!/usr/bin/env bash
# End-to-end check of the Docker + CRIU lab (tests/lab/docker.sh up first):
#   1. checkpoint a counting busybox container on engine A and restore it in place;
#   2. migrate one from engine A to engine B (checkpoint dir copied into B's data root);
#   3. report which CRIU features this kernel offers (incremental dumps, lazy pages).
# A counter that restarted instead of resuming shows up as a break in its 0,1,2,... sequence.
# Prints checkpoint/restore times. SMOKE_CLI=/usr/local/bin/docker tries another client.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
[ -f "$ROOT/.lab/docker.env" ] || { echo "smoke: no .lab/docker.env; run tests/lab/docker.sh up" >&2; exit 1; }
set -a; . "$ROOT/.lab/docker.env"; set +a
CLI=${SMOKE_CLI:-$DOCKER_CLI}
A() { "$CLI" -H "$DOCKER_A_HOST" "$@"; }
B() { "$CLI" -H "$DOCKER_B_HOST" "$@"; }
# shellcheck disable=SC2016  # expanded by the container's shell, not this one
COUNTER='i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done'
NAME=smoke-$$
TMP=$(mktemp -d)
trap 'A rm -f $NAME-local $NAME-move > /dev/null 2>&1 || true; B rm -f $NAME-move > /dev/null 2>&1 || true; rm -rf "$TMP"' EXIT

# ip_forward stays off on the host (the lab must not change it), so `docker run` warns; hide that.
quiet() { "$@" 2> >(grep -v 'IPv4 forwarding is disabled' >&2); }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
now() { date +%s%N; }
ms_since() { echo $(( ($(now) - $1) / 1000000 )); }

# Logs must read FIRST, FIRST+1, ... with no gap or restart; prints the last number.
sequence() {
  awk -v first="$1" '{ if ($1 != (NR == 1 ? first : prev + 1)) bad = NR; prev = $1 }
    END { if (bad || NR == 0) { print "break at line " bad " of " NR > "/dev/stderr"; exit 1 } print prev }'
}

# `docker start --checkpoint` straight after a checkpoint has been seen to fail once with
# "content sha256:… already exists"; that error is retried, anything else is not.
start_from_checkpoint() {
  local engine=$1 checkpoint=$2 container=$3 out
  for _ in 1 2 3 4 5; do
    if out=$("$engine" start --checkpoint "$checkpoint" "$container" 2>&1); then return 0; fi
    case $out in *"already exists"*) echo "smoke: retrying restore ($out)" >&2; sleep 0.2 ;; *) fail "restore: $out" ;; esac
  done
  fail "restore kept failing: $out"
}

echo "smoke: client $(A version --format '{{.Client.Version}}'), engines A $(A version --format '{{.Server.Version}}') / B $(B version --format '{{.Server.Version}}')"

# 1. Checkpoint and restore in place on engine A.
quiet A run -d --name "$NAME-local" "$LAB_IMAGE_TINY" sh -c "$COUNTER" > /dev/null
sleep 1.5
t=$(now); A checkpoint create "$NAME-local" cp1 > /dev/null; cp_ms=$(ms_since "$t")
[ "$(A inspect -f '{{.State.Running}}' "$NAME-local")" = false ] || fail "container still running after checkpoint"
before=$(A logs "$NAME-local" | sequence 0) || fail "counter broken before checkpoint"
t=$(now); start_from_checkpoint A cp1 "$NAME-local"; rs_ms=$(ms_since "$t")
sleep 1.5
after=$(A logs "$NAME-local" | sequence 0) || fail "counter restarted instead of resuming after restore"
[ "$after" -gt $((before + 3)) ] || fail "counter did not advance after restore ($before -> $after)"
echo "smoke: local checkpoint/restore ok: counter $before -> $after; checkpoint ${cp_ms} ms, restore ${rs_ms} ms"

# 2. Migrate from engine A to engine B (`docker start --checkpoint-dir` is refused by the engine,
#    so the checkpoint goes into the new container's own checkpoints folder).
quiet A run -d --name "$NAME-move" "$LAB_IMAGE_TINY" sh -c "$COUNTER" > /dev/null
sleep 1.5
t=$(now); A checkpoint create --checkpoint-dir "$TMP" "$NAME-move" m1 > /dev/null; mcp_ms=$(ms_since "$t")
last=$(A logs "$NAME-move" | sequence 0) || fail "counter broken on A"
[ -d "$TMP/m1" ] || fail "no checkpoint in $TMP/m1"
t=$(now)
quiet B create --name "$NAME-move" "$LAB_IMAGE_TINY" sh -c "$COUNTER" > /dev/null
id=$(B inspect -f '{{.Id}}' "$NAME-move")
mkdir -p "$DOCKER_B_DATA_ROOT/containers/$id/checkpoints"
cp -a "$TMP/m1" "$DOCKER_B_DATA_ROOT/containers/$id/checkpoints/m1"
move_ms=$(ms_since "$t")
t=$(now); start_from_checkpoint B m1 "$NAME-move"; mrs_ms=$(ms_since "$t")
sleep 1.5
onb=$(B logs "$NAME-move" | sequence $((last + 1))) || fail "counter on B did not continue from $((last + 1))"
echo "smoke: migration A -> B ok: A stopped at $last, B continued to $onb; checkpoint ${mcp_ms} ms, create+copy ${move_ms} ms, restore ${mrs_ms} ms ($(du -sh "$TMP/m1" | cut -f1) image)"

# 3. Kernel capabilities for CRIU (findings, not failures): mem_dirty_track = soft-dirty, needed by
#    pre-dump/--track-mem; uffd + uffd-noncoop = lazy pages (CRIU has no "lazy_pages" feature name).
for feature in mem_dirty_track uffd uffd-noncoop pagemap_scan; do
  if out=$("$CRIU_BIN" check --feature "$feature" 2>&1); then res=yes; else res="no ($(echo "$out" | tail -1))"; fi
  echo "smoke: criu feature $feature: $res"
done
echo "smoke: PASS"
