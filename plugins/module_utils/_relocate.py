# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving a Kafka consumer workload to another region without losing or repeating a message
(private: may change without notice).

Two strategies, both built on the consumer helper's promise (commit exactly what was processed,
commit on revoke and on SIGTERM, then leave the group):

* handover: stop every old instance, wait until the group has no member left and its committed
  offsets stand still, pin the workload to the target region, start it, wait until its pods are
  Ready and the group has members again. Never two generations consuming at once.
* warm (Deployments): pin the workload to the target region under a surge-only rolling update,
  so the new pods are scheduled and started (and Ready, in standby) while the old ones still
  consume; Kubernetes then stops the old ones, and the helper's start gate lets a new instance
  subscribe only once no member of another generation is left. The gap is the group's join.

The group is watched throughout: the gap is the time in which it had no Stable membership.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ansible_collections.streamops.day2.plugins.module_utils._common import OperationError
from ansible_collections.streamops.day2.plugins.module_utils._k8s import node_ready, pod_ready
from ansible_collections.streamops.day2.plugins.module_utils._lag.collect import LagCollector
from ansible_collections.streamops.day2.plugins.module_utils._lag.report import Options

POLL = 0.1  # seconds between two looks at the group and the pods while waiting

ANNOTATION = "streamops.day2/"
AT, FROM, TO, REASON, COUNT = (ANNOTATION + n for n in ("relocated-at", "relocated-from", "relocated-to", "relocation-reason", "relocations"))


class RelocationError(OperationError):
    """The relocation cannot be done or did not complete; one sentence."""


# -- placement: where a pod template pins its pods ------------------------------------------------

def template_region(template_spec, label, placement):
    """The region a pod template pins (node selector or required node affinity), or None."""
    if placement == "node_selector":
        return (template_spec.get("nodeSelector") or {}).get(label)
    for term in _affinity_terms(template_spec):
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") == label and expression.get("operator") == "In" and len(expression.get("values") or []) == 1:
                return expression["values"][0]
    return None


def _affinity_terms(template_spec):
    required = (((template_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    return required.get("nodeSelectorTerms") or []


def placement_patch(template_spec, label, placement, region):
    """The pod-template spec patch that pins the pods to region (strategic merge)."""
    if placement == "node_selector":
        return {"nodeSelector": {label: region}}
    # nodeSelectorTerms has no merge key: the whole list is sent, each term keeping its other expressions.
    expression = {"key": label, "operator": "In", "values": [region]}
    terms = []
    for term in _affinity_terms(template_spec) or [{}]:
        term = dict(term)
        term["matchExpressions"] = [e for e in term.get("matchExpressions") or [] if e.get("key") != label] + [expression]
        terms.append(term)
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}


def placement_view(template_spec, label, placement):
    """What the diff shows: the part of the pod template that decides the region."""
    if placement == "node_selector":
        return {"nodeSelector": template_spec.get("nodeSelector") or {}}
    return {"affinity": {"nodeAffinity": template_spec.get("affinity", {}).get("nodeAffinity") or {}}}


# -- capacity: does a region have room for the workload's pods ------------------------------------

_UNITS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}


def quantity(text):
    """A Kubernetes quantity ("500m", "256Mi", "2") as a float."""
    text = str(text)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * _UNITS[suffix]
    return float(text)


def pod_requests(pod_spec):
    """{resource: amount} a pod requests (sum over its containers; init containers run before)."""
    total = {}
    for container in pod_spec.get("containers") or []:
        for resource, amount in ((container.get("resources") or {}).get("requests") or {}).items():
            total[resource] = total.get(resource, 0.0) + quantity(amount)
    return total


def fits(nodes, used, requests, count):
    """Whether count pods requesting `requests` can be placed on nodes (first fit).

    nodes: node dicts; used: {node name: {resource: requested by the pods already there}}."""
    free = {}
    for node in nodes:
        name = node["metadata"]["name"]
        allocatable = {r: quantity(v) for r, v in (node.get("status", {}).get("allocatable") or {}).items()}
        free[name] = {r: allocatable.get(r, 0.0) - used.get(name, {}).get(r, 0.0) for r in requests}
    for unused in range(count):
        for room in free.values():
            if all(room[r] >= amount for r, amount in requests.items()):
                for r, amount in requests.items():
                    room[r] -= amount
                break
        else:
            return False
    return True


def candidate_regions(regions, current, rotate):
    """Regions in the order they are tried; with rotate, those after the current one first, never the current one."""
    regions = list(dict.fromkeys(regions))
    if not rotate or current not in regions:
        return regions
    at = regions.index(current)
    return regions[at + 1:] + regions[:at]


def cooldown_remaining(workload, cooldown, now=None):
    """Seconds until the workload may move again, after its last relocation (annotation); 0 when it may."""
    stamp = (workload["metadata"].get("annotations") or {}).get(AT)
    if not cooldown or not stamp:
        return 0
    try:
        moved = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0  # not ours to trust: a hand-edited annotation does not block relocations forever
    left = moved + cooldown - (time.time() if now is None else now)
    return round(left, 1) if left > 0 else 0


# -- the group, watched while the workload moves --------------------------------------------------

class GroupWatch:
    """Samples the consumer group (state, members) and measures how long it had no Stable membership."""

    def __init__(self, kafka, group):
        self.group = group
        self.collector = LagCollector(kafka, Options())
        self.inactive_since = None
        self.gaps = []
        self.last = None
        self.offsets_at_gap = None  # committed offsets when the group was first seen without a Stable membership

    def look(self):
        description = self.collector.describe_groups([self.group])[0]
        now = time.monotonic()
        active = description.state == "Stable" and bool(description.members)
        if not active and self.inactive_since is None:
            self.inactive_since = now
            if self.offsets_at_gap is None:
                self.offsets_at_gap = self.committed()
        elif active and self.inactive_since is not None:
            self.gaps.append(now - self.inactive_since)
            self.inactive_since = None
        self.last = description
        return description

    @property
    def members(self):
        return self.last.members if self.last else []

    @property
    def active(self):
        return self.last is not None and self.last.state == "Stable" and bool(self.last.members)

    def committed(self):
        offsets = self.collector.committed_offsets([self.group])[self.group]
        return {key: offsets[key] for key in sorted(offsets)}

    def gap_seconds(self):
        """Seconds without a Stable membership, counting a gap still open."""
        open_gap = [time.monotonic() - self.inactive_since] if self.inactive_since is not None else []
        return round(sum(self.gaps + open_gap), 3)


# -- the relocation --------------------------------------------------------------------------------

class Relocation:
    """One k8s_consumer_relocate task: decide, then (unless in check mode) move and wait."""

    def __init__(self, module, k8s, kafka):
        self.module = module
        self.p = module.params
        self.k8s = k8s
        self.kafka = kafka
        self.kind, self.namespace, self.name = self.p["kind"], self.p["namespace"], self.p["name"]
        self.label, self.placement = self.p["region_label"], self.p["placement"]
        self.what = "%s %s/%s" % (self.kind, self.namespace, self.name)
        self.actions = []

    # -- reading -------------------------------------------------------------------------------

    def workload(self):
        workload = self.k8s.get_workload(self.kind, self.namespace, self.name)
        if workload is None:
            raise RelocationError("%s does not exist; check name, namespace and kind." % self.what)
        return workload

    def pods(self, workload):
        selector = workload["spec"].get("selector", {}).get("matchLabels")
        if not selector:
            raise RelocationError("%s has no spec.selector.matchLabels; its pods cannot be found." % self.what)
        return self.k8s.pods(self.namespace, selector)

    def region_of(self, node):
        return (node["metadata"].get("labels") or {}).get(self.label)

    def choose_region(self, workload, current, nodes):
        """The first region of the preference list that has Ready nodes with room for the pods."""
        replicas = workload["spec"].get("replicas", 1) or 1
        requests = pod_requests(workload["spec"]["template"].get("spec") or {})
        refused = []
        for region in candidate_regions(self.p["regions"], current, self.p["rotate"]):
            if region == current:
                return region, []
            ready = [n for n in nodes if self.region_of(n) == region and node_ready(n)]
            if not ready:
                refused.append("%s has no Ready node" % region)
                continue
            if requests and not fits(ready, self._used(), requests, replicas):
                refused.append("%s has no room for %d pod%s requesting %s" % (
                    region, replicas, "" if replicas == 1 else "s", _requests_text(requests)))
                continue
            return region, ready
        if not refused:
            raise RelocationError("No region to move %s to: it runs in %s, the only region of %s." % (self.what, current, self.p["regions"]))
        raise RelocationError("No region to move %s to: %s (nodes labelled %s)." % (self.what, "; ".join(refused), self.label))

    def _used(self):
        """{node name: {resource: requested}} of the running pods, the workload's own left out; one listing for all nodes."""
        listing = self.k8s.call("list the pods", self.k8s.core.list_pod_for_all_namespaces,
                                field_selector="status.phase!=Succeeded,status.phase!=Failed")
        used = {}
        for pod in map(self.k8s.plain, listing.items):
            node = pod.get("spec", {}).get("nodeName")
            if not node or (pod["metadata"].get("namespace") == self.namespace and _owned_by_workload(pod, self.name)):
                continue  # not placed yet, or the workload's own (its pods leave the region they are in)
            total = used.setdefault(node, {})
            for resource, amount in pod_requests(pod.get("spec") or {}).items():
                total[resource] = total.get(resource, 0.0) + amount
        return used

    # -- the task ------------------------------------------------------------------------------

    def run(self):
        workload = self.workload()
        template_spec = workload["spec"]["template"].get("spec") or {}
        current = template_region(template_spec, self.label, self.placement)
        nodes = self.k8s.nodes()
        node_regions = {node["metadata"]["name"]: self.region_of(node) for node in nodes}
        pods = self.pods(workload)
        old_nodes = sorted({pod["spec"].get("nodeName") for pod in pods if pod["spec"].get("nodeName")})
        wait = cooldown_remaining(workload, self.p["cooldown"])
        target, target_nodes = (current, []) if wait else self.choose_region(workload, current, nodes)
        result = dict(changed=False, cooldown_remaining=wait, kind=self.kind, namespace=self.namespace, name=self.name, group=self.p["group"],
                      strategy=self.p["strategy"], region_before=current, region=target,
                      old_nodes=old_nodes, new_nodes=old_nodes, old_pods=sorted(p["metadata"]["name"] for p in pods),
                      regions_of_old_nodes=sorted({str(node_regions.get(n)) for n in old_nodes}),
                      gap_seconds=0.0, offsets=[], members=[], rolled_back=False, actions=self.actions)
        if target == current:
            return result
        if self.p["strategy"] == "warm" and self.kind != "Deployment":
            raise RelocationError("The warm strategy needs a Deployment (a StatefulSet replaces its pods in place, one at a "
                                  "time); use strategy=handover for %s." % self.what)
        before = placement_view(template_spec, self.label, self.placement)
        patch = placement_patch(template_spec, self.label, self.placement, target)
        after = dict(before, **patch)
        result.update(changed=True, diff=dict(before=dict(region=current, **before), after=dict(region=target, **after)))
        self.actions.append("%s %s from region %s to region %s (nodes %s)" % (
            "hand over" if self.p["strategy"] == "handover" else "warm-move", self.what, current or "(unpinned)", target,
            ", ".join(n["metadata"]["name"] for n in target_nodes)))
        if self.module.check_mode:
            return result
        move = self._handover if self.p["strategy"] == "handover" else self._warm
        result.update(move(workload, patch, current, target))
        return result

    def _annotations(self, workload, current, target):
        annotations = workload["metadata"].get("annotations") or {}
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        earlier = str(annotations.get(COUNT, ""))
        count = int(earlier) + 1 if earlier.isdigit() else 1
        new = {AT: stamp, FROM: current or "", TO: target, COUNT: str(count)}
        new[REASON] = self.p["reason"] or None  # None removes an earlier reason
        return new

    def _handover(self, workload, patch, current, target):
        replicas = workload["spec"].get("replicas", 1)
        watch = GroupWatch(self.kafka, self.p["group"])
        started = time.monotonic()
        watch.look()
        self.k8s.patch_workload(self.kind, self.namespace, self.name, {"spec": {"replicas": 0}})
        self.actions.append("scaled %s from %d to 0 replicas" % (self.what, replicas))
        offsets = self._wait_stopped(workload, watch, started)
        stopped = time.monotonic()
        self.k8s.patch_workload(self.kind, self.namespace, self.name, {
            "metadata": {"annotations": self._annotations(workload, current, target)},
            "spec": {"replicas": replicas, "template": {"spec": patch}}})
        self.actions.append("pinned %s to region %s and scaled it back to %d replicas" % (self.what, target, replicas))
        try:
            moved = self._wait_running(watch, target, time.monotonic())
        except RelocationError as e:
            raise self._roll_back_handover(workload, replicas, current, str(e))
        moved.update(offsets=offsets, gap_seconds=watch.gap_seconds(),
                     timings=dict(stop_seconds=round(stopped - started, 3), start_seconds=round(time.monotonic() - stopped, 3),
                                  total_seconds=round(time.monotonic() - started, 3)))
        return moved

    def _warm(self, workload, patch, current, target):
        replicas = workload["spec"].get("replicas", 1)
        strategy = workload["spec"].get("strategy") or {}
        watch = GroupWatch(self.kafka, self.p["group"])
        started = time.monotonic()
        watch.look()
        surge = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}
        self.k8s.patch_workload(self.kind, self.namespace, self.name, {
            "metadata": {"annotations": self._annotations(workload, current, target)},
            "spec": {"strategy": surge, "template": {"spec": patch}}})
        self.actions.append("pinned %s to region %s with a surge-only rollout (new pods Ready before old ones stop)" % (self.what, target))
        try:
            moved = self._wait_running(watch, target, started)
        except RelocationError as e:
            raise self._roll_back_warm(workload, current, str(e))
        finally:
            if strategy != surge:
                self.k8s.patch_workload(self.kind, self.namespace, self.name, {"spec": {"strategy": _strategy_patch(strategy)}})
        moved.update(offsets=_offset_rows(watch.offsets_at_gap if watch.offsets_at_gap is not None else watch.committed()),
                     gap_seconds=watch.gap_seconds(), timings=dict(total_seconds=round(time.monotonic() - started, 3)))
        return moved

    # -- waiting -------------------------------------------------------------------------------

    def _deadline(self, since):
        return since + self.p["wait_timeout"]

    def _wait_stopped(self, workload, watch, since):
        """Until no pod of the workload is left, the group has no member and its offsets stood still for settle_time."""
        deadline, settled = self._deadline(since), None
        while True:
            pods = self.pods(workload)
            watch.look()
            if not pods and not watch.members:
                offsets = watch.committed()
                if settled is not None and settled[1] == offsets and time.monotonic() - settled[0] >= self.p["settle_time"]:
                    return _offset_rows(offsets)
                if settled is None or settled[1] != offsets:
                    settled = (time.monotonic(), offsets)
            if time.monotonic() > deadline:
                self._scale_back(workload)
                raise RelocationError("%s did not hand over within %gs: %s; it was scaled back where it was." % (
                    self.what, self.p["wait_timeout"], _still_there(pods, watch)))
            time.sleep(POLL)

    def _wait_running(self, watch, target, since):
        """Until the rollout is complete in the target region and the group has a Stable membership."""
        deadline = self._deadline(since)
        while True:
            workload = self.workload()
            pods = self.pods(workload)
            watch.look()
            done = _rolled_out(workload)
            needed = min(self.p["min_members"], workload["spec"].get("replicas", 1))  # a workload scaled to 0 has no member to wait for
            if done and (needed == 0 or (watch.active and len(watch.members) >= needed)):
                return dict(new_nodes=sorted({p["spec"].get("nodeName") for p in pods}),
                            new_pods=sorted(p["metadata"]["name"] for p in pods),
                            members=[dict(client_id=m.client_id, host=m.host, partitions=len(m.assignment)) for m in watch.members])
            if time.monotonic() > deadline:
                ready = sum(1 for p in pods if pod_ready(p))
                raise RelocationError("the new pods of %s were not Ready in region %s within %gs (%d of %d Ready, group %s with %d "
                                      "member%s)" % (self.what, target, self.p["wait_timeout"], ready, workload["spec"].get("replicas", 1),
                                                     watch.last.state if watch.last else "unknown", len(watch.members),
                                                     "" if len(watch.members) == 1 else "s"))
            time.sleep(POLL)

    # -- rolling back --------------------------------------------------------------------------

    def _scale_back(self, workload):
        self.k8s.patch_workload(self.kind, self.namespace, self.name, {"spec": {"replicas": workload["spec"].get("replicas", 1)}})
        self.actions.append("scaled %s back to %d replicas" % (self.what, workload["spec"].get("replicas", 1)))

    def _restore_placement(self, workload):
        original = workload["spec"]["template"].get("spec") or {}
        if self.placement == "node_selector":
            value = (original.get("nodeSelector") or {}).get(self.label)
            return {"nodeSelector": {self.label: value}}  # None removes the key again
        return {"affinity": original.get("affinity")}

    def _roll_back_handover(self, workload, replicas, current, why):
        """Stop the new pods the same careful way, put the old placement back and start again; the error to fail with."""
        watch = GroupWatch(self.kafka, self.p["group"])
        self.k8s.patch_workload(self.kind, self.namespace, self.name, {"spec": {"replicas": 0}})
        try:
            self._wait_stopped(workload, watch, time.monotonic())
        finally:
            self.k8s.patch_workload(self.kind, self.namespace, self.name, {
                "metadata": {"annotations": {TO: current or "", REASON: "rolled back: " + why}},
                "spec": {"replicas": replicas, "template": {"spec": self._restore_placement(workload)}}})
        return self._rolled_back(current, why)

    def _roll_back_warm(self, workload, current, why):
        """The old pods still run (the rollout never takes one away before its successor is Ready): undo the template."""
        self.k8s.patch_workload(self.kind, self.namespace, self.name, {
            "metadata": {"annotations": {TO: current or "", REASON: "rolled back: " + why}},
            "spec": {"template": {"spec": self._restore_placement(workload)}}})
        return self._rolled_back(current, why)

    def _rolled_back(self, current, why):
        """The error that ends a task whose move was undone."""
        self.actions.append("rolled %s back to region %s" % (self.what, current or "(unpinned)"))
        return RelocationError("Relocation rolled back: %s; %s runs in region %s again." % (why, self.what, current or "(unpinned)"),
                               rolled_back=True, actions=self.actions)


def _rolled_out(workload):
    spec, status = workload["spec"], workload.get("status") or {}
    replicas = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < workload["metadata"].get("generation", 0):
        return False
    # Old pods gone (status.replicas counts every generation's pods), the new ones all updated and Ready.
    return (status.get("updatedReplicas", 0) == replicas and status.get("readyReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas)


def _owned_by_workload(pod, name):
    """A pod of the Deployment (through its ReplicaSet, name-hash) or StatefulSet (name-ordinal) called name."""
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("kind") == "StatefulSet" and owner.get("name") == name:
            return True
        if owner.get("kind") == "ReplicaSet" and owner.get("name", "").rsplit("-", 1)[0] == name:
            return True
    return False


def _strategy_patch(strategy):
    """Put a Deployment's own strategy back (a Recreate strategy may carry no rollingUpdate)."""
    if strategy.get("type") == "Recreate":
        return {"type": "Recreate", "rollingUpdate": None}
    return {"type": strategy.get("type", "RollingUpdate"), "rollingUpdate": strategy.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"}}


def _offset_rows(offsets):
    return [dict(topic=topic, partition=partition, offset=offset) for (topic, partition), offset in sorted(offsets.items())]


def _still_there(pods, watch):
    parts = []
    if pods:
        parts.append("%d pod%s still present" % (len(pods), "" if len(pods) == 1 else "s"))
    if watch.members:
        parts.append("group %s still has %d member%s (%s)" % (watch.group, len(watch.members), "" if len(watch.members) == 1 else "s",
                                                              ", ".join(sorted(m.client_id for m in watch.members))))
    return " and ".join(parts) or "its committed offsets kept changing"


def _requests_text(requests):
    return ", ".join("%s %g" % item for item in sorted(requests.items()))
