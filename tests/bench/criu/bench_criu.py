"""Checkpoint freeze time, migration downtime and version storage, on the lab's two Docker engines.

    source tests/env.sh && python tests/bench/criu/bench_criu.py [--sizes 16 64 256] [--reps 3] [--versions 10] [--only freeze,migrate,storage]

The workload (python image) holds N MB of random memory, rewrites a few random pages per tick and
prints its tick number and time.time() every 20 ms, so the pause an application really sees is
measured from its own output, independently of what any tool reports:

- freeze: `docker checkpoint create --leave-running` (the engine's API, the reference) against
  docker_checkpoint with method=runc (CRIU driven directly); per size: the call's duration, the
  pause seen in the workload's output (largest gap between two ticks, less one tick), CRIU's own
  frozen time (runc path), and the checkpoint's size. Also the breakdown of CRIU's dump statistics.
- migrate: the raw docker CLI steps of LAB.md (checkpoint --checkpoint-dir on A, copy into B's data
  root, start --checkpoint on B; the container created on B beforehand, as the module does)
  against docker_container_migrate (runc, pages linked; transfer through /tmp, and through /dev/shm)
  and docker_container_migrate with method=engine; downtime = the workload's last tick on A to its
  first tick on B.
- storage: V versions of a 64 MB workload one second apart, kept as plain directories and as
  de-duplicated chunks (the same images ingested both ways), for a workload that rewrites few pages
  and one that rewrites 2 MB/s.

Medians over --reps runs. Markdown tables on stdout, raw numbers in .build/bench/criu.json.
Containers are removed from both engines at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path.insert(0, COLLECTIONS)

from ansible_collections.streamops.day2.plugins.module_utils._criu.store import Store  # noqa: E402  pylint: disable=wrong-import-position

ENV = os.environ
CLI = ENV.get("DOCKER_CLI", "docker")
HOSTS = {"a": ENV.get("DOCKER_A_HOST"), "b": ENV.get("DOCKER_B_HOST")}
DATA_ROOT = {"a": ENV.get("DOCKER_A_DATA_ROOT"), "b": ENV.get("DOCKER_B_DATA_ROOT")}
IMAGE = ENV.get("LAB_IMAGE_PYTHON", "streamops-lab/python:1")
TICK = 0.02
WORKLOAD = (
    "import random, sys, time\n"
    "mb = int(sys.argv[1]); pages = int(sys.argv[2]); scattered = sys.argv[3] == 'scattered'; rng = random.Random(7)\n"
    "chunks = [bytearray(rng.randbytes(1 << 20)) for k in range(mb)]\n"
    "i = 0; run = rng.randrange(mb * 256)\n"
    "while True:\n"
    "    for p in range(pages):\n"
    "        k = rng.randrange(mb * 256) if scattered else (run + i * pages + p) % (mb * 256)\n"
    "        chunks[k // 256][(k % 256) * 4096:(k % 256) * 4096 + 4096] = rng.randbytes(4096)\n"
    "    print(i, time.time(), flush=True)\n"
    "    i += 1; time.sleep(TICK)\n"
).replace("TICK", repr(TICK))
CREATED = []


def docker(engine, *args, check=True):
    proc = subprocess.run([CLI, "-H", HOSTS[engine], *args], capture_output=True, text=True, check=False, timeout=600)
    if check and proc.returncode != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


def run_args(name, mb, pages, spread="scattered"):
    return ["--name", name, IMAGE, "python3", "-u", "-c", WORKLOAD, str(mb), str(pages), spread]


def start(engine, mb, pages=1, spread="scattered"):
    name = "bench-criu-%s" % uuid.uuid4().hex[:8]
    CREATED.append(name)
    docker(engine, "run", "-d", *run_args(name, mb, pages, spread))
    ticks(engine, name, wait_for=int(1.0 / TICK))   # allocated and ticking for a second
    return name


def ticks(engine, name, wait_for=0, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        lines = [line.split() for line in docker(engine, "logs", name).splitlines()]
        out = [(int(a), float(b)) for a, b in (line for line in lines if len(line) == 2)]
        if len(out) >= wait_for:
            return out
        if time.monotonic() > deadline:
            raise RuntimeError("%s printed %d ticks in %ss" % (name, len(out), timeout))
        time.sleep(0.2)


def max_gap(points, since=None):
    gaps = [b[1] - a[1] for a, b in zip(points, points[1:]) if since is None or b[1] >= since]
    return max(gaps) - TICK if gaps else None


def module(name, args):
    path = os.path.join(COLLECTIONS, "ansible_collections", "streamops", "day2", "plugins", "modules", name + ".py")
    proc = subprocess.run([sys.executable, path], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True,
                          env=dict(ENV, PYTHONPATH=COLLECTIONS), check=False, timeout=900)
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise RuntimeError("%s: %s" % (name, result.get("msg")))
    return result


def remove(*names):
    for engine in ("a", "b"):
        for name in names:
            docker(engine, "rm", "-f", name, check=False)


def dir_size(path):
    return sum(os.path.getsize(os.path.join(base, f)) for base, unused, files in os.walk(path) for f in files
               if not os.path.islink(os.path.join(base, f)))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- freeze ---------------------------------------------------------------------------------------

def freeze_once(mb, how):
    name = start("a", mb)
    try:
        since = time.time()
        if how == "docker":
            started = time.monotonic()
            docker("a", "checkpoint", "create", "--leave-running", name, "cp1")
            call = time.monotonic() - started
            inspect = json.loads(docker("a", "inspect", name))[0]
            size = dir_size(os.path.join(DATA_ROOT["a"], "containers", inspect["Id"], "checkpoints", "cp1"))
            frozen, stats = None, {}
        else:
            result = module("docker_checkpoint", dict(container=name, docker_host=HOSTS["a"], method="runc", name="cp1"))
            call, frozen, stats = result["timings"]["checkpoint_seconds"], result["timings"]["freeze_seconds"], result["criu_stats"]
            size = result["checkpoint"]["size"]
        time.sleep(0.5)
        seen = max_gap(ticks("a", name), since=since)
        return dict(call=call, seen=seen, frozen=frozen, size=size, stats=stats)
    finally:
        remove(name)


def bench_freeze(sizes, reps):
    rows = {}
    for mb in sizes:
        for how in ("docker", "runc"):
            runs = [freeze_once(mb, how) for unused in range(reps)]
            rows[(mb, how)] = runs
            print("freeze %4d MB %-6s call %.2fs seen %.2fs" % (mb, how, median(r["call"] for r in runs), median(r["seen"] for r in runs)),
                  file=sys.stderr)
    print("\n### Freeze: checkpoint of a running container (leave running), medians of %d\n" % reps)
    print("| memory | `docker checkpoint create` call | pause seen by the app | docker_checkpoint method=runc call | pause seen by the app "
          "| CRIU frozen_time | checkpoint size |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for mb in sizes:
        d, r = rows[(mb, "docker")], rows[(mb, "runc")]
        print("| %d MB | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %.1f MB |" % (
            mb, median(x["call"] for x in d), median(x["seen"] for x in d), median(x["call"] for x in r),
            median(x["seen"] for x in r), median(x["frozen"] for x in r), median(x["size"] for x in r) / 2 ** 20))
    print("\nCRIU's dump statistics, method=runc (medians, seconds):\n")
    print("| memory | freezing | frozen | memdump | memwrite | pages written |")
    print("|---:|---:|---:|---:|---:|---:|")
    for mb in sizes:
        r = rows[(mb, "runc")]
        print("| %d MB | %.3f | %.3f | %.3f | %.3f | %d |" % (mb, *(median(x["stats"].get(k) for x in r) for k in (
            "freezing_time", "frozen_time", "memdump_time", "memwrite_time")), median(x["stats"].get("pages_written") for x in r)))
    return {"%d/%s" % key: value for key, value in rows.items()}


# -- migrate --------------------------------------------------------------------------------------

def migrate_cli(mb):
    name = start("a", mb)
    directory = tempfile.mkdtemp(prefix="bench-criu-cli-")
    try:
        docker("b", "create", *run_args(name, mb, 1))
        target_id = json.loads(docker("b", "inspect", name))[0]["Id"]
        started = time.monotonic()
        docker("a", "checkpoint", "create", "--checkpoint-dir", directory, name, "m1")
        dumped = time.monotonic()
        destination = os.path.join(DATA_ROOT["b"], "containers", target_id, "checkpoints", "m1")
        subprocess.run(["cp", "-a", os.path.join(directory, "m1"), destination], check=True)
        copied = time.monotonic()
        for attempt in range(5):
            proc = subprocess.run([CLI, "-H", HOSTS["b"], "start", "--checkpoint", "m1", name], capture_output=True, text=True, check=False)
            if proc.returncode == 0 or "already exists" not in proc.stderr or attempt == 4:
                break
        if proc.returncode != 0:
            raise RuntimeError("docker start --checkpoint: %s" % proc.stderr.strip())
        done = time.monotonic()
        last_a = ticks("a", name)[-1]
        first_b = ticks("b", name, wait_for=1)[0]
        assert first_b[0] == last_a[0] + 1, "the counter did not continue (%s on A, %s on B)" % (last_a[0], first_b[0])
        return dict(downtime=done - started, seen=first_b[1] - last_a[1] - TICK, checkpoint=dumped - started, transfer=copied - dumped,
                    restore=done - copied)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        remove(name)


def migrate_module(mb, **options):
    name = start("a", mb)
    try:
        result = module("docker_container_migrate", dict(container=name, docker_host=HOSTS["a"], target=dict(docker_host=HOSTS["b"]),
                                                         verify_seconds=0.5, remove_source=False, **options))
        last_a = ticks("a", name)[-1]
        first_b = ticks("b", name, wait_for=1)[0]
        assert first_b[0] == last_a[0] + 1, "the counter did not continue (%s on A, %s on B)" % (last_a[0], first_b[0])
        timings = result["timings"]
        return dict(downtime=timings["downtime_seconds"], freeze=timings.get("freeze_seconds"), checkpoint=timings["checkpoint_seconds"],
                    restore=timings["restore_seconds"], seen=first_b[1] - last_a[1] - TICK, bytes=result["bytes"]["transferred"],
                    stats=result.get("criu_stats", {}))
    finally:
        remove(name)


def bench_migrate(sizes, reps):
    variants = [
        ("cli", "raw docker CLI (LAB.md steps)", migrate_cli),
        ("engine", "docker_container_migrate method=engine", lambda mb: migrate_module(mb, method="engine")),
        ("runc", "docker_container_migrate (runc, /tmp)", lambda mb: migrate_module(mb, method="runc")),
        ("runc-shm", "docker_container_migrate (runc, /dev/shm)", lambda mb: migrate_module(mb, method="runc", transfer_dir="/dev/shm")),
    ]
    rows = {}
    for mb in sizes:
        for key, unused, fn in variants:
            runs = [fn(mb) for unused_rep in range(reps)]
            rows[(mb, key)] = runs
            print("migrate %4d MB %-8s downtime %.2fs" % (mb, key, median(r["downtime"] for r in runs)), file=sys.stderr)
    print("\n### Migration A -> B: downtime (from the freeze to running on B), medians of %d\n" % reps)
    print("| memory | " + " | ".join(label for unused, label, unused_fn in variants) + " | module freeze (CRIU frozen_time) | speed-up vs CLI |")
    print("|---:|" + "---:|" * (len(variants) + 2))
    for mb in sizes:
        cells = [median(r["downtime"] for r in rows[(mb, key)]) for key, unused, unused_fn in variants]
        freeze = median(r["freeze"] for r in rows[(mb, "runc-shm")])
        print("| %d MB | %s | %.2f s | %.1fx |" % (mb, " | ".join("%.2f s" % c for c in cells), freeze, cells[0] / min(cells[2:])))
    print("\nWhere the raw CLI's downtime goes (medians, seconds):\n")
    print("| memory | checkpoint create --checkpoint-dir | cp -a into B's data root | start --checkpoint on B | gap seen by the app |")
    print("|---:|---:|---:|---:|---:|")
    for mb in sizes:
        r = rows[(mb, "cli")]
        print("| %d MB | %.2f | %.2f | %.2f | %.2f |" % (mb, *(median(x[k] for x in r) for k in ("checkpoint", "transfer", "restore", "seen"))))
    print("\nWhere the module's downtime goes (runc, /dev/shm; medians, seconds):\n")
    print("| memory | checkpoint (runc) | of which CRIU frozen | restore on B (pages linked) | downtime | gap seen by the app |")
    print("|---:|---:|---:|---:|---:|---:|")
    for mb in sizes:
        r = rows[(mb, "runc-shm")]
        print("| %d MB | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
            mb, *(median(x[k] for x in r) for k in ("checkpoint", "freeze", "restore", "downtime", "seen"))))
    return {"%d/%s" % key: value for key, value in rows.items()}


# -- storage --------------------------------------------------------------------------------------

def bench_storage(versions, mb=64):
    out = {}
    print("\n### Storage of %d versions of a %d MB container, one second apart\n" % (versions, mb))
    print("| workload | plain directories | de-duplicated pages | saved | dedup: storing one version | dedup: rebuilding the newest |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, pages, spread in (("rewrites 50 random pages/s (0.2 MB/s)", 1, "scattered"),
                                 ("rewrites 500 random pages/s (2 MB/s)", 10, "scattered"),
                                 ("rewrites 2 MB/s in one run (log, buffer)", 10, "contiguous")):
        name = start("a", mb, pages, spread)
        base = tempfile.mkdtemp(prefix="bench-criu-store-")
        try:
            plain = os.path.join(base, "plain")
            for unused in range(versions):
                module("docker_checkpoint", dict(container=name, docker_host=HOSTS["a"], store_path=plain, method="runc",
                                                 store_image=False))
                time.sleep(1)
            store = Store(os.path.join(base, "dedup"), create=True)
            started = time.monotonic()
            for version in reversed(Store(plain).versions(name)):
                store.add(name, version.name, os.path.join(version.path, "images"), dict(version.manifest), fmt="dedup", move=False)
            ingest = (time.monotonic() - started) / versions
            started = time.monotonic()
            store.materialise(store.find(name, "latest"), os.path.join(base, "rebuilt"))
            rebuild = time.monotonic() - started
            sizes = dict(plain=dir_size(plain), dedup=dir_size(os.path.join(base, "dedup")), ingest=ingest, rebuild=rebuild)
            out[label] = sizes
            print("| %s | %.1f MB | %.1f MB | %.0f %% | %.2f s | %.2f s |" % (
                label, sizes["plain"] / 2 ** 20, sizes["dedup"] / 2 ** 20, 100 * (1 - sizes["dedup"] / sizes["plain"]), ingest, rebuild))
        finally:
            shutil.rmtree(base, ignore_errors=True)
            remove(name)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--only", default="freeze,migrate,storage")
    args = parser.parse_args()
    if not HOSTS["a"] or not HOSTS["b"]:
        sys.exit("bench_criu: the lab's Docker engines are not up (no DOCKER_A_HOST/DOCKER_B_HOST): run tests/lab/up docker")
    results = {}
    only = set(args.only.split(","))
    try:
        if "freeze" in only:
            results["freeze"] = bench_freeze(args.sizes, args.reps)
        if "migrate" in only:
            results["migrate"] = bench_migrate(args.sizes, args.reps)
        if "storage" in only:
            results["storage"] = bench_storage(args.versions)
    finally:
        remove(*CREATED)
    os.makedirs(os.path.join(ROOT, ".build", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, ".build", "bench", "criu.json"), "w") as handle:
        json.dump(results, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
