# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Executes or cancels a reassignment plan against the brokers (the one part of kafka_reassignment with I/O).

Kafka calls go through ``KafkaModule``: kafka-python's admin client for the APIs librdkafka lacks
(AlterPartitionReassignments, ListPartitionReassignments, DescribeLogDirs, DescribeCluster with
fenced brokers), confluent-kafka for metadata, configs and leader elections.
"""

from __future__ import annotations

import time

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaError
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import (
    ClusterView, PartitionState, PlanError, as_plan, check_fingerprint, check_plan, conflict_error, human_bytes, load_plan,
    looks_mid_move, plan_fingerprint, rollback_plan, triage)
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.schedule import (
    Caps, keeps_plan_order, next_batch, order_moves, simulate_batches,
)
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.throttle import (
    BROKER_THROTTLE_KEYS, FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS, TOPIC_THROTTLE_KEYS, estimate_seconds,
    parse_rate, throttle_for)

try:
    from confluent_kafka import ElectionType, KafkaError as ConfluentError
    from confluent_kafka import TopicPartition as ConfluentTopicPartition
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
except ImportError:
    pass  # reported by KafkaModule through missing_required_lib

try:
    from kafka import TopicPartition as KafkaPythonTopicPartition
    from kafka import errors as kafka_python_errors
except ImportError:
    pass  # reported by KafkaModule through missing_required_lib


SETTLE_SECONDS = 5.0  # how long a partition may show a move's replicas after the move ended: past it, they are real


class MoveFailed(KafkaError):
    """A move that ended somewhere else than its target: not a passing hiccup."""


def kafka_python_error_text(error):
    """A kafka-python error (class or instance) as one readable phrase, without the request dump."""
    kind = error if isinstance(error, type) else type(error)
    description = getattr(kind, "description", "") or ""
    name = kind.__name__.replace("Error", "") or kind.__name__
    return "%s (%s)" % (name, description) if description else (str(error).split(": Request", 1)[0] or name)


class Brokers:
    """The cluster, seen and changed through the module's clients."""

    def __init__(self, kafka):
        self.kafka = kafka
        self.timeout_ms = int(kafka.timeout * 1000)

    def _kp(self, what, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except kafka_python_errors.KafkaError as e:
            self.kafka.drop_kafka_python_admin()  # the next call reconnects and finds the brokers again
            raise KafkaError("%s failed: %s." % (what, kafka_python_error_text(e)))

    @property
    def _kp_admin(self):
        return self.kafka.kafka_python_admin

    # --- reading -----------------------------------------------------------------------------

    def view(self, topics=None):
        """ClusterView of every registered broker (alive or not) and the partitions of ``topics`` (all if None)."""
        metadata = self.kafka.metadata()
        alive = set(metadata.brokers)
        described = self._kp("Describing the cluster", self._kp_admin.describe_cluster)
        brokers = {b: True for b in alive}
        for broker in described.get("brokers", []):
            node = broker["broker_id"]
            brokers[node] = node in alive and not broker.get("is_fenced", False)
        partitions = {}
        names = set()
        for name, topic in metadata.topics.items():
            if topic.error is not None or (topics is not None and name not in topics):
                continue
            names.add(name)
            for p in topic.partitions.values():
                partitions[(name, p.id)] = PartitionState(tuple(p.replicas), p.leader, tuple(p.isrs))
        self.kafka.refuse_hidden_topics(sorted(set(topics or ()) - names))   # not "does not exist" when ACLs hide it
        return ClusterView(brokers=brokers, partitions=partitions, topics=names)

    def ongoing(self, keys=None):
        """Ongoing reassignments (all, or of ``keys``): (topic, partition) -> replicas/adding_replicas/removing_replicas."""
        partitions = None if keys is None else [KafkaPythonTopicPartition(t, p) for t, p in keys]
        if partitions == []:
            return {}
        found = self._kp("Listing partition reassignments", self._kp_admin.list_partition_reassignments,
                         partitions, timeout_ms=self.timeout_ms)
        return {(tp.topic, tp.partition): state for tp, state in found.items()}

    def sizes(self, keys):
        """Bytes of the largest replica of each partition, from DescribeLogDirs; {} when the brokers can't say."""
        by_topic = {}
        for topic, number in keys:
            by_topic.setdefault(topic, []).append(number)
        if not by_topic:
            return {}
        try:
            answers = self._kp_admin.describe_log_dirs(topic_partitions=by_topic)
        except kafka_python_errors.KafkaError as e:
            self.kafka.warn("Partition sizes are unknown (DescribeLogDirs failed: %s); moves are ordered without them."
                            % kafka_python_error_text(e))
            return {}
        wanted = set(keys)
        sizes = {}
        for answer in answers:
            for log_dir in answer.get("log_dirs", []):
                if log_dir.get("error_code"):
                    continue
                for topic in log_dir.get("topics", []):
                    for part in topic.get("partitions", []):
                        key = (topic["name"], part["partition_index"])
                        if key in wanted and not part.get("is_future_key"):
                            sizes[key] = max(sizes.get(key, 0), int(part.get("partition_size") or 0))
        return sizes

    def throttles_set(self, brokers, topics):
        """Throttle configs in place: ({broker: {key: value}}, {topic: {key: value}}), only where set."""
        on_brokers, on_topics = {}, {}
        for broker in sorted(brokers):
            found = self._describe(ConfigResource(ConfigResource.Type.BROKER, str(broker)), BROKER_THROTTLE_KEYS,
                                   ConfigSource.DYNAMIC_BROKER_CONFIG)
            if found:
                on_brokers[broker] = found
        if topics:
            resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in sorted(topics)]
            for resource, future in self.kafka.admin.describe_configs(resources).items():
                try:
                    entries = self.kafka.wait_for(future)
                except KafkaError:
                    continue  # a topic deleted meanwhile holds no throttle
                found = {k: entries[k].value for k in TOPIC_THROTTLE_KEYS
                         if k in entries and ConfigSource(entries[k].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG}
                if found:
                    on_topics[resource.name] = found
        return on_brokers, on_topics

    def _describe(self, resource, keys, source):
        entries = self.kafka.wait_for(self.kafka.admin.describe_configs([resource])[resource])
        return {k: entries[k].value for k in keys if k in entries and ConfigSource(entries[k].source) == source}

    # --- changing ----------------------------------------------------------------------------

    def submit(self, moves):
        """AlterPartitionReassignments for the moves; returns {key: error} for those Kafka refused."""
        request = {KafkaPythonTopicPartition(m.topic, m.partition): list(m.target) for m in moves}
        answers = self._kp("Submitting the reassignment", self._kp_admin.alter_partition_reassignments, request,
                           timeout_ms=self.timeout_ms)
        errors = {}
        for m in moves:
            tp = KafkaPythonTopicPartition(m.topic, m.partition)
            if tp not in answers:
                errors[m.key] = "no answer from the controller"
            elif answers[tp] is not None:
                errors[m.key] = kafka_python_error_text(answers[tp])
        return errors

    def cancel(self, keys):
        """Cancels the ongoing reassignments of ``keys``; returns {key: error}. One that just finished is no error."""
        request = {KafkaPythonTopicPartition(t, p): None for t, p in keys}
        answers = self._kp("Cancelling the reassignment", self._kp_admin.alter_partition_reassignments, request,
                           timeout_ms=self.timeout_ms)
        errors = {}
        for tp, error in answers.items():
            if error is not None and error is not kafka_python_errors.NoReassignmentInProgressError:
                errors[(tp.topic, tp.partition)] = kafka_python_error_text(error)
        return errors

    def set_configs(self, kind, name, values):
        """Incremental SET of ``values`` (DELETE where a value is None) on one broker or topic."""
        resource_type = ConfigResource.Type.BROKER if kind == "broker" else ConfigResource.Type.TOPIC
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET)
                   for k, v in values.items()]
        # librdkafka takes one broker resource per call, so every resource goes alone.
        resource = ConfigResource(resource_type, str(name), incremental_configs=entries)
        self.kafka.wait_for(self.kafka.admin.incremental_alter_configs([resource])[resource])

    def elect_preferred(self, keys):
        """Preferred-leader election; returns {key: error} (an election that is not needed is no error)."""
        if not keys:
            return {}
        future = self.kafka.admin.elect_leaders(ElectionType.PREFERRED, [ConfluentTopicPartition(t, p) for t, p in keys])
        answers = self.kafka.wait_for(future)
        errors = {}
        for tp, error in answers.items():
            if error is not None and error.code() != ConfluentError.ELECTION_NOT_NEEDED:
                errors[(tp.topic, tp.partition)] = error.str()
        return errors


# ---------------------------------------------------------------------------------------------


def read_plan(params):
    """The plan from ``plan`` (dict or JSON text) or ``plan_file``; None when neither is given."""
    if params.get("plan_file"):
        try:
            with open(params["plan_file"], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as e:
            raise KafkaError("Cannot read plan_file %s: %s." % (params["plan_file"], e.strerror or e))
        return load_plan(text)
    if params.get("plan") is not None:
        return load_plan(params["plan"])
    return None


class Throttling:
    """Sets the throttle as Kafka's tool does and remembers what it touched, so it can always take it away."""

    def __init__(self, brokers, rate):
        self.brokers = brokers
        self.rate = rate
        self.touched_brokers = set()
        self.touched_topics = set()

    def apply(self, proposed, view):
        """Throttle for ``proposed`` moves on top of every reassignment already running in the cluster."""
        if not self.rate:
            return
        throttle = throttle_for(self.brokers.ongoing(), [(m.topic, m.partition, m.current, m.target) for m in proposed])
        wanted_topics = {}
        for topic in throttle.topics:
            wanted_topics[topic] = {LEADER_REPLICAS: throttle.leader.get(topic, ""), FOLLOWER_REPLICAS: throttle.follower.get(topic, "")}
            self.brokers.set_configs("topic", topic, wanted_topics[topic])
            self.touched_topics.add(topic)
        rate = str(self.rate)
        new_brokers = []
        for broker in throttle.brokers:
            if broker in self.touched_brokers:
                continue
            if not view.brokers.get(broker, False):
                continue  # an offline broker cannot take a config (Kafka routes it to that broker); it keeps none of ours
            self.brokers.set_configs("broker", broker, {LEADER_RATE: rate, FOLLOWER_RATE: rate})
            self.touched_brokers.add(broker)
            new_brokers.append(broker)
        self._wait_visible(new_brokers, wanted_topics, rate)

    def _wait_visible(self, brokers, topics, rate, timeout=10.0):
        """Until the brokers report the throttle just set: a config change takes a moment to reach every broker, and a
        move submitted before would start unthrottled."""
        wanted_brokers = {b: {LEADER_RATE: rate, FOLLOWER_RATE: rate} for b in brokers}
        deadline = time.monotonic() + timeout
        while True:
            on_brokers, on_topics = self.brokers.throttles_set(wanted_brokers, set(topics))
            late = [b for b, values in wanted_brokers.items() if on_brokers.get(b) != values]
            late += [t for t, values in topics.items() if on_topics.get(t, {}) != values]
            if not late or time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def action(self):
        return "throttle %s/s on brokers %s and topics %s" % (
            human_bytes(self.rate), ",".join(str(b) for b in sorted(self.touched_brokers)), ",".join(sorted(self.touched_topics)))


def clear_throttle(brokers, view, topics, touched=None, check_mode=False, confirm_timeout=30.0, cancelling=()):
    """Remove reassignment throttles from the live brokers and from ``topics``.

    ``touched`` holds the (brokers, topics) this run set: they are cleared whether or not the brokers
    already show the setting (a config change takes a moment to show). Throttles left by earlier runs
    are cleared as Kafka's ``--verify`` clears them: the broker rates only when no reassignment is in
    flight anywhere in the cluster, a topic's lists only when none of its partitions is moving, so
    someone else's running reassignment keeps its throttle. Then waits until the brokers no longer
    report what was cleared. Returns (removed, offline, lingering): what was (or would be) removed,
    the offline brokers that could not be checked (Kafka takes a broker's config only through that
    broker), and whatever still showed when ``confirm_timeout`` ran out. ``cancelling`` holds the keys
    a check-mode cancel would have cancelled first: they count as no longer moving, as in the real run.
    """
    touched_brokers, touched_topics = touched or ((), ())
    live = {b for b, alive in view.brokers.items() if alive}
    offline = sorted(b for b, alive in view.brokers.items() if not alive)
    moving = {key: state for key, state in brokers.ongoing().items() if key not in set(cancelling)}
    moving_topics = {t for t, unused in moving}
    existing = (set(topics) & set(view.topics)) - moving_topics
    on_brokers, on_topics = brokers.throttles_set(set() if moving else live, existing)
    clear_brokers = sorted(set(on_brokers) | (set(touched_brokers) & live))
    clear_topics = sorted(set(on_topics) | (set(touched_topics) & set(view.topics)))
    lingering = {"brokers": [], "topics": []}
    if not check_mode:
        for broker in clear_brokers:
            brokers.set_configs("broker", broker, dict.fromkeys(BROKER_THROTTLE_KEYS))
        for topic in clear_topics:
            brokers.set_configs("topic", topic, dict.fromkeys(TOPIC_THROTTLE_KEYS))
        deadline = time.monotonic() + confirm_timeout
        while clear_brokers or clear_topics:
            still_brokers, still_topics = brokers.throttles_set(clear_brokers, clear_topics)
            lingering = {"brokers": sorted(still_brokers), "topics": sorted(still_topics)}
            if not still_brokers and not still_topics or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    removed = {"brokers": clear_brokers, "topics": clear_topics}
    return removed, offline, lingering


def _where(found):
    parts = []
    if found["brokers"]:
        parts.append("brokers %s" % ",".join(str(b) for b in found["brokers"]))
    if found["topics"]:
        parts.append("topics %s" % ",".join(found["topics"]))
    return " and ".join(parts)


def _removal_action(removed):
    return "remove throttle from %s" % _where(removed)


def _names(keys):
    return ["%s-%d" % key for key in sorted(keys)]


# ---------------------------------------------------------------------------------------------
# state=present


class Execution:
    """One run of a plan: triage, then a sliding window of moves under caps and a throttle, then elections."""

    def __init__(self, kafka, plan, params):
        self.kafka = kafka
        self.params = params
        self.plan = plan
        self.brokers = Brokers(kafka)
        self.started = time.monotonic()
        self.actions = []
        self.batches = []
        self.moved = []
        self.running = {}
        self.queue = []
        self.elected = []
        self.warnings = []
        self.mismatches = {}
        self.last_error = None
        self.throttle_result = {}

    def run(self):
        params, plan = self.params, self.plan
        fingerprint = plan_fingerprint(plan)
        if params.get("fingerprint"):
            check_fingerprint(plan, params["fingerprint"])
        caps = Caps(cluster=params["max_concurrent_moves"], per_broker=params["max_concurrent_moves_per_broker"])
        rate = parse_rate(params.get("throttle"))
        order_moves([], params["order"])  # refuse a bad order before touching anything
        topics = {p["topic"] for p in plan["partitions"]}
        view, ongoing = self._read_cluster(topics)
        check_plan(plan, view, ongoing)
        work = triage(plan, view, ongoing)
        if work.conflicts:
            raise conflict_error(work.conflicts)
        if work.all_moves:
            sizes = self.brokers.sizes([m.key for m in work.all_moves])
            for move in work.all_moves:
                move.size = sizes.get(move.key, 0)
        self.queue = order_moves(work.pending, params["order"])
        self.running = {m.key: m for m in work.running}
        all_moves = work.running + self.queue
        self.result = dict(
            fingerprint=fingerprint,
            rollback_plan=rollback_plan(all_moves),
            estimated_seconds=estimate_seconds(all_moves, rate),
        )
        self.done_before = work.done
        self.check_mode = self.kafka.check_mode
        if self.check_mode:
            return self._predict(view, caps, rate, all_moves)
        failure = None
        throttling = Throttling(self.brokers, rate)
        try:
            self._execute(view, caps, throttling)
            if params["wait"] and params["elect_leaders"]:
                self._elect()
        except (KafkaError, PlanError) as e:
            failure = e
        finally:
            self._finish_throttle(view, topics, throttling, failure)
        result = self._result(all_moves, rate)
        if failure is not None:
            raise KafkaError(self._failure_message(failure), **result)
        return result

    def _read_cluster(self, topics):
        """The metadata and the ongoing reassignments of the plan's partitions, read again (for up to SETTLE_SECONDS)
        while a partition shows the replicas of a move that no longer runs: one that ended between the two reads, or
        whose end the metadata does not show yet. A resumed run often starts just as its moves end."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            view = self.brokers.view(topics)
            keys = [(p["topic"], p["partition"]) for p in self.plan["partitions"] if (p["topic"], p["partition"]) in view.partitions]
            ongoing = self.brokers.ongoing(keys)
            if not looks_mid_move(self.plan, view, ongoing) or time.monotonic() > deadline:
                return view, ongoing
            time.sleep(0.1)

    # --- check mode ---------------------------------------------------------------------------

    def _predict(self, view, caps, rate, all_moves):
        leaders = self._leaders_to_elect(view) if self.params["elect_leaders"] else []
        leftovers = {"brokers": [], "topics": []}
        if not self.params["keep_throttle"] and not all_moves:
            leftovers = clear_throttle(self.brokers, view, {p["topic"] for p in self.plan["partitions"]}, check_mode=True)[0]
        actions = []
        waves = simulate_batches(self.queue, caps, keeps_plan_order(self.params["order"]))
        if rate and all_moves:
            actions.append("throttle %s/s" % human_bytes(rate))
        if self.running:
            actions.append("wait for %d move(s) already running: %s" % (len(self.running), ", ".join(_names(self.running))))
        for number, wave in enumerate(waves, 1):
            actions.append("batch %d: move %s" % (number, ", ".join(m.name for m in wave)))
        if leaders:
            actions.append("elect preferred leaders of %s" % ", ".join(leaders))
        if leftovers["brokers"] or leftovers["topics"]:
            actions.append(_removal_action(leftovers))
        moves = [m.as_dict("would_move") for m in self.queue] + [m.as_dict("in_flight") for m in self.running.values()]
        self.result.update(
            changed=bool(self.queue or (self.running and self.params["wait"]) or leaders or leftovers["brokers"] or leftovers["topics"]),
            actions=actions,
            moves=sorted(moves, key=lambda d: (d["topic"], d["partition"])),
            batches=[dict(at=None, partitions=[m.name for m in wave]) for wave in waves],   # the shape of a real run's
            progress=self._progress(all_moves),
            leader_elections=leaders,
            throttle=dict(rate=rate, removed=leftovers, kept=False, left_on=[]),
        )
        return self.result

    def _leaders_to_elect(self, view):
        """Plan partitions whose leader is not their preferred (first) replica, for check mode."""
        names = []
        for entry in self.plan["partitions"]:
            state = view.partitions[(entry["topic"], entry["partition"])]
            if state.leader != entry["replicas"][0]:
                names.append("%s-%d" % (entry["topic"], entry["partition"]))
        return names

    # --- the run ------------------------------------------------------------------------------

    def _execute(self, view, caps, throttling):
        params = self.params
        deadline = self.started + params["wait_timeout"]
        if self.running:
            self.actions.append("resume %d move(s) already running: %s" % (len(self.running), ", ".join(_names(self.running))))
            throttling.apply([], view)
        while True:
            batch = next_batch(self.queue, list(self.running.values()), caps, keeps_plan_order(params["order"]))
            if batch:
                throttling.apply(batch, view)
                errors = self.brokers.submit(batch)
                accepted = [m for m in batch if m.key not in errors]
                for move in accepted:
                    self.running[move.key] = move
                taken = {m.key for m in batch}
                self.queue = [m for m in self.queue if m.key not in taken]
                self.batches.append(dict(at=round(time.monotonic() - self.started, 1), partitions=[m.name for m in accepted]))
                if accepted:
                    self.actions.append("move %s" % ", ".join(m.name for m in accepted))
                if errors:
                    raise KafkaError("Kafka refused to move %s" % "; ".join(
                        "%s-%d: %s" % (key[0], key[1], text) for key, text in sorted(errors.items())))
            if not self.running and not self.queue:
                return
            if not params["wait"]:
                if self.queue:
                    self.warnings.append("wait=false: %d move(s) not started yet (caps); run the task again to start them."
                                         % len(self.queue))
                return
            if time.monotonic() > deadline:
                raise KafkaError("Timed out after %gs%s" % (params["wait_timeout"], self._last_error_note()))
            time.sleep(params["poll_interval"])
            try:
                self._collect_finished()
                self.last_error = None
            except MoveFailed:
                raise
            except KafkaError as e:
                # A broker restarting or the controller moving: keep looking until the deadline.
                self.last_error = str(e)

    def _last_error_note(self):
        return " (last error while waiting: %s)" % self.last_error.rstrip(".") if self.last_error else ""

    def _collect_finished(self):
        still = self.brokers.ongoing(list(self.running))
        finished = [m for key, m in self.running.items() if key not in still]
        if not finished:
            return
        placed = self._placements([m.key for m in finished])
        for move in finished:
            replicas = placed.get(move.key)
            if replicas != move.target:
                # The metadata may lag the controller by a moment; only a mismatch seen several times is real.
                self.mismatches[move.key] = self.mismatches.get(move.key, 0) + 1
                if replicas is None or self.mismatches[move.key] < 3:
                    continue
                del self.running[move.key]
                raise MoveFailed("%s ended on replicas [%s] instead of [%s]: its reassignment was cancelled or replaced by someone else"
                                 % (move.name, ",".join(map(str, replicas)), ",".join(map(str, move.target))))
            del self.running[move.key]
            move.finished_at = round(time.monotonic() - self.started, 1)
            self.moved.append(move)

    def _placements(self, keys):
        """Replicas of ``keys`` as the metadata shows them; a key is missing while the metadata still shows the union."""
        view = self.brokers.view({t for t, unused in keys})
        found = {}
        for key in keys:
            state = view.partitions.get(key)
            if state is not None:
                found[key] = state.replicas
        return found

    def _elect(self):
        plan_keys = [(p["topic"], p["partition"]) for p in self.plan["partitions"]]
        view = self.brokers.view({t for t, unused in plan_keys})
        wanted = []
        for entry in self.plan["partitions"]:
            key = (entry["topic"], entry["partition"])
            state = view.partitions.get(key)
            if state is not None and state.leader != entry["replicas"][0]:
                if entry["replicas"][0] in state.isr:
                    wanted.append(key)
                else:
                    self.warnings.append("%s-%d: preferred leader %d is not in sync yet, leadership left with broker %s."
                                         % (key[0], key[1], entry["replicas"][0], state.leader))
        if not wanted:
            return
        errors = self.brokers.elect_preferred(wanted)
        for key, text in sorted(errors.items()):
            self.warnings.append("%s-%d: preferred leader election failed: %s" % (key[0], key[1], text))
        self.elected = _names(k for k in wanted if k not in errors)
        if self.elected:
            self.actions.append("elect preferred leaders of %s" % ", ".join(self.elected))

    def _finish_throttle(self, view, topics, throttling, failure):
        """Always take the throttle away at the end, also after a failure, unless told to keep it or moves still run
        without waiting (they need it)."""
        if throttling.touched_brokers or throttling.touched_topics:
            self.actions.insert(0, throttling.action())
        keep = self.params["keep_throttle"] or (not self.params["wait"] and self.running and failure is None)
        removed, left = {"brokers": [], "topics": []}, []
        if not keep:
            try:
                removed, offline, lingering = clear_throttle(self.brokers, self.brokers.view(topics), topics | throttling.touched_topics,
                                                             touched=(throttling.touched_brokers, throttling.touched_topics))
                left = sorted(set(offline) & throttling.touched_brokers)
                if lingering["brokers"] or lingering["topics"]:
                    self.warnings.append("The brokers still report the throttle on %s after it was removed; check with "
                                         "kafka-configs --describe." % _where(lingering))
            except KafkaError as e:
                self.warnings.append("The throttle could not be removed (%s); remove %s from brokers %s and %s from topics %s by hand."
                                     % (e, "/".join(BROKER_THROTTLE_KEYS), ",".join(map(str, sorted(throttling.touched_brokers))),
                                        "/".join(TOPIC_THROTTLE_KEYS), ",".join(sorted(throttling.touched_topics))))
                left = sorted(throttling.touched_brokers)
            if removed["brokers"] or removed["topics"]:
                self.actions.append(_removal_action(removed))
            if left:
                self.warnings.append("Brokers %s were offline at the end, so their throttle rates stay until they are back and "
                                     "this task runs again (Kafka takes a broker's config only through that broker)."
                                     % ",".join(map(str, left)))
        elif throttling.touched_brokers or throttling.touched_topics:
            why = "keep_throttle=true" if self.params["keep_throttle"] else "wait=false and moves are still running"
            self.warnings.append("The replication throttle stays in place (%s); run this task again with wait=true, or with "
                                 "state=absent, to remove it." % why)
        self.throttle_result = dict(rate=throttling.rate, brokers=sorted(throttling.touched_brokers),
                                    topics=sorted(throttling.touched_topics), removed=removed, kept=bool(keep), left_on=left)

    # --- result -------------------------------------------------------------------------------

    def _progress(self, all_moves):
        return dict(
            partitions=len(self.plan["partitions"]),
            at_target_before=len(self.done_before),
            moved=len(self.moved),
            in_flight=len(self.running),
            pending=len(self.queue),
            replica_moves=sum(len(m.adding) for m in all_moves),
            bytes_total=sum(m.bytes for m in all_moves),
            bytes_moved=sum(m.bytes for m in self.moved),
            batches=len(self.batches),
            elapsed_seconds=round(time.monotonic() - self.started, 1),
        )

    def _result(self, all_moves, rate):
        statuses = {m.key: "moved" for m in self.moved}
        statuses.update({key: "in_flight" for key in self.running})
        statuses.update({m.key: "pending" for m in self.queue})
        moves = []
        for move in sorted(all_moves, key=lambda m: m.key):
            entry = move.as_dict(statuses.get(move.key, "pending"))
            if getattr(move, "finished_at", None) is not None:
                entry["finished_at"] = move.finished_at
            moves.append(entry)
        removed = self.throttle_result.get("removed") or {}
        changed = bool(self.moved or any(b["partitions"] for b in self.batches) or self.elected
                       or removed.get("brokers") or removed.get("topics"))
        self.result.update(
            changed=changed,
            actions=self.actions,
            moves=moves,
            batches=self.batches,
            progress=self._progress(all_moves),
            leader_elections=self.elected,
            throttle=self.throttle_result,
        )
        for warning in self.warnings:
            self.kafka.warn(warning)
        return self.result

    def _failure_message(self, failure):
        text = str(failure).rstrip(".")
        if self.running:
            waiting = sorted(self.running.values(), key=lambda m: m.key)
            try:
                view = self.brokers.view({m.topic for m in waiting})
                offline = sorted({b for m in waiting for b in m.adding if not view.brokers.get(b, False)})
            except KafkaError:
                offline = []
            text += "; %d move(s) still running: %s" % (len(waiting), ", ".join(m.name for m in waiting[:10]))
            if offline:
                text += " (waiting for offline broker%s %s)" % ("s" if len(offline) > 1 else "", ",".join(map(str, offline)))
            text += ". Run the task again to resume (it adopts the running moves), or with state=absent to cancel them"
        if self.queue:
            text += "; %d move(s) not started" % len(self.queue)
        kept = self.throttle_result.get("kept")
        if self.throttle_result.get("brokers") or self.throttle_result.get("topics"):
            text += "; the throttle was %s" % ("kept (keep_throttle=true)" if kept else "removed")
        return text + "."


# ---------------------------------------------------------------------------------------------
# state=absent


def cancel(kafka, plan, params):
    """Cancel the plan's ongoing moves (all ongoing moves without a plan) and remove the throttle."""
    brokers = Brokers(kafka)
    keys = None if plan is None else [(p["topic"], p["partition"]) for p in plan["partitions"]]
    result = dict(fingerprint=plan_fingerprint(plan) if plan else None)
    if plan is not None and params.get("fingerprint"):
        check_fingerprint(plan, params["fingerprint"])
    ongoing = brokers.ongoing(keys)
    topics = {t for t, unused in ongoing} | ({p["topic"] for p in plan["partitions"]} if plan else set())
    view = brokers.view(topics if plan is not None else None)
    if plan is None:
        topics = set(view.topics)
    actions = []
    before = {key: list(state["replicas"]) for key, state in ongoing.items()}
    if ongoing:
        actions.append("cancel %s" % ", ".join(_names(ongoing)))
    if ongoing and not kafka.check_mode:
        errors = brokers.cancel(list(ongoing))
        if errors:
            raise KafkaError("Kafka refused to cancel %s." % "; ".join("%s-%d: %s" % (k[0], k[1], v) for k, v in sorted(errors.items())))
        _wait_cancelled(brokers, list(ongoing), params)
    after_view = brokers.view(topics) if ongoing and not kafka.check_mode else view
    cancelled = []
    for key in sorted(ongoing):
        original = [b for b in ongoing[key]["replicas"] if b not in set(ongoing[key].get("adding_replicas") or [])]
        state = after_view.partitions.get(key)
        cancelled.append(dict(topic=key[0], partition=key[1], before=before[key],
                              after=list(state.replicas) if state is not None and not kafka.check_mode else original))
    removed, left = {"brokers": [], "topics": []}, []
    if not params["keep_throttle"]:
        removed, left, lingering = clear_throttle(brokers, after_view, topics, check_mode=kafka.check_mode,
                                                  cancelling=set(ongoing) if kafka.check_mode else ())
        if lingering["brokers"] or lingering["topics"]:
            kafka.warn("The brokers still report the throttle on %s after it was removed; check with kafka-configs --describe."
                       % _where(lingering))
        if removed["brokers"] or removed["topics"]:
            actions.append(_removal_action(removed))
        if left:
            kafka.warn("Brokers %s are offline: throttle rates they may hold could not be checked; run this task again once they are back."
                       % ",".join(map(str, left)))
    result.update(
        changed=bool(ongoing or removed["brokers"] or removed["topics"]),
        actions=actions,
        cancelled=cancelled,
        throttle=dict(removed=removed, kept=params["keep_throttle"], left_on=left),
    )
    if kafka._diff:
        result["diff"] = dict(before=as_plan((c["topic"], c["partition"], c["before"]) for c in cancelled),
                              after=as_plan((c["topic"], c["partition"], c["after"]) for c in cancelled))
    return result


def _wait_cancelled(brokers, keys, params):
    deadline = time.monotonic() + params["wait_timeout"]
    while True:
        if not brokers.ongoing(keys):
            return
        if time.monotonic() > deadline:
            raise KafkaError("The cancelled reassignments of %s are still listed after %gs." % (", ".join(_names(keys)), params["wait_timeout"]))
        time.sleep(min(params["poll_interval"], 0.5))


# ---------------------------------------------------------------------------------------------


def run(kafka):
    """Entry point of the module: state=present executes the plan, state=absent cancels."""
    params = kafka.params
    try:
        plan = read_plan(params)
        if params["state"] == "absent":
            return cancel(kafka, plan, params)
        if plan is None:
            raise PlanError("state=present needs a plan: give plan or plan_file.")
        execution = Execution(kafka, plan, params)
        result = execution.run()
    except PlanError as e:
        raise KafkaError(str(e))
    if kafka._diff:
        result["diff"] = dict(before=as_plan((m["topic"], m["partition"], m["before"]) for m in result["moves"]),
                              after=as_plan((m["topic"], m["partition"], m["after"]) for m in result["moves"]))
    return result
