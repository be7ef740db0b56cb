# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a protected container belongs, and whether a stored version may be restored (pure logic).

A container's *home* is the engine where it last ran. The evidence, newest wins: the store's home
record (written by every checkpoint, restore and migration that names the store), the engine of its
newest version (its manifest), and the container itself on each engine that answers (when it last
started or stopped there). A version taken before the container ran on another engine is older than
the copy there: it is never restored elsewhere without an explicit ``force``, and the refusal says
why. docker_checkpoint applies the rule to the store's record (``refusal``); the container_failover
role applies it to everything its probes saw (``plan``, through the ``failover_plan`` filter).
"""

from __future__ import annotations

import datetime
import re

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(text):
    """Seconds since the epoch of an ISO 8601 time (Docker's nanoseconds and 'Z' included); None when unknown."""
    if not text or not isinstance(text, str) or text.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def same_engine(record, host, engine_id=None):
    """Whether a home record names this engine (by its id when both are known, else by its address)."""
    if record.get("engine_id") and engine_id:
        return record["engine_id"] == engine_id
    return record.get("engine") == host


def refusal(record, version_name, version_created, version_engine, host, engine_id=None, container="the container"):
    """Why version `version_name` must not be restored on engine `host` without force, or None.

    Refused when the store's record says the container moved (a migration or a restore) to another engine after the
    version was taken: the copy there holds newer state.
    """
    if not record or record.get("how") not in ("migration", "restore"):
        return None
    since = record.get("since_ts")
    created = parse_time(version_created)
    if since is None or created is None or since <= created:
        return None
    if same_engine(record, host, engine_id) or record.get("engine") == version_engine:
        return None
    return ("Version %s of %s was taken on %s at %s, before %s moved to %s (%s at %s): restoring it on %s would bring back "
            "older state than the copy there; start %s on %s, or set force=true to restore %s anyway."
            % (version_name, container, version_engine or "an unknown engine", _iso(created), container, record["engine"],
               record["how"], _iso(since), host, container, record["engine"], version_name))


def _last_ran(summary):
    """When the container last ran on an engine, from its summary (the later of its start and its stop)."""
    times = [parse_time(summary.get(key)) for key in ("started_at", "finished_at")]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def plan(probes, engines, force=False):
    """What the container_failover role does, container by container, from its probes.

    probes: the results of docker_checkpoint state=query, one per (container, engine), each with ``item`` =
    [container name, engine dict], ``engine.reachable``, ``container`` (summary), ``latest`` (newest version) and
    ``home`` (the store's record). engines: the role's engines (``name``, ``docker_host``), in order of preference.
    Returns one decision per container (in the order first probed) with ``action`` among running, conflict, no_checkpoint,
    stopped_on_its_healthy_engine, restore, refused, no_engine, and a ``reason`` sentence.
    """
    by_host = {e.get("docker_host"): e.get("name") for e in engines}
    order = [e.get("name") for e in engines]
    containers = []
    rows = {}
    for probe in probes:
        name, engine = probe["item"][0], probe["item"][1]
        if name not in rows:
            containers.append(name)
        rows.setdefault(name, []).append((engine.get("name"), probe))
    return [_decide(name, rows[name], by_host, order, force) for name in containers]


def _decide(name, rows, by_host, order, force):
    up = [engine for engine, probe in rows if (probe.get("engine") or {}).get("reachable", True)]
    running_on = [engine for engine, probe in rows if (probe.get("container") or {}).get("running")]
    stopped_on = [engine for engine, probe in rows if (probe.get("container") or {}).get("exists")
                  and not (probe.get("container") or {}).get("running")]
    latest = next((probe.get("latest") for unused, probe in rows if probe.get("latest")), None)
    record = next((probe.get("home") for unused, probe in rows if probe.get("home")), None)

    evidence = []   # (time, engine name, how)
    if record and by_host.get(record.get("engine")) and record.get("since_ts") is not None:
        evidence.append((float(record["since_ts"]), by_host[record["engine"]], record.get("how")))
    version_engine = by_host.get((latest or {}).get("engine"))
    version_time = parse_time((latest or {}).get("created"))
    if version_engine and version_time is not None:
        evidence.append((version_time, version_engine, "checkpoint"))
    for engine, probe in rows:
        summary = probe.get("container") or {}
        ran = _last_ran(summary) if summary.get("exists") else None
        if ran is not None:
            evidence.append((ran, engine, "ran there"))
    home, home_time, home_how = "", None, None
    if evidence:
        home_time, home, home_how = max(evidence, key=lambda e: e[0])

    decision = dict(container=name, running_on=running_on, stale_on=stopped_on if running_on else [], engines_up=up, home=home,
                    home_since=_iso(home_time) if home_time is not None else None, home_how=home_how,
                    version=(latest or {}).get("name") or "", version_engine=version_engine or "", target="", forced=False)

    def done(action, reason, target=""):
        decision.update(action=action, reason=reason, target=target)
        return decision

    if len(running_on) > 1:
        return done("conflict", "%s runs on engines %s; decide which copy to keep and remove the others." % (name, ", ".join(running_on)))
    if running_on:
        return done("running", "%s runs on engine %s." % (name, running_on[0]))
    if not latest:
        return done("no_checkpoint", "%s runs nowhere and the store holds no version of it." % name)
    if home in up and home in stopped_on:
        return done("stopped_on_its_healthy_engine", "%s is stopped on engine %s, where it last ran, and that engine answers: it was "
                                                     "stopped, its engine did not fail, so nothing is restored." % (name, home))
    if not up:
        return done("no_engine", "%s runs nowhere and no engine answers." % name)
    if home in up:
        return done("restore", "%s runs nowhere; its home engine %s answers, so version %s is restored there."
                    % (name, home, latest["name"]), target=home)
    moved = bool(home and home != version_engine and home_time is not None and version_time is not None and home_time > version_time)
    free = [engine for engine in order if engine in up and engine not in stopped_on] or [engine for engine in order if engine in up]
    if moved:
        why = ("its newest version %s was taken on engine %s at %s, before it ran on engine %s (%s at %s), which does not answer: "
               "restoring %s would bring back older state than the copy on %s"
               % (latest["name"], version_engine, _iso(version_time), home, home_how, _iso(home_time), latest["name"], home))
        if not force:
            return done("refused", "%s is not restored: %s; start it on %s once that engine is back, or set "
                                   "container_failover_force=true to restore %s anyway." % (name, why, home, latest["name"]))
        decision["forced"] = True
        return done("restore", "%s is restored on engine %s although %s (container_failover_force=true)." % (name, free[0], why),
                    target=free[0])
    return done("restore", "%s runs nowhere and its engine %s does not answer, so version %s is restored on engine %s."
                % (name, home or "(unknown)", latest["name"], free[0]), target=free[0])
