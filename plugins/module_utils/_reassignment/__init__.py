# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kafka_reassignment's logic (private: may change without notice).

``plan``, ``schedule`` and ``throttle`` are pure: plain values in and out, unit-tested without brokers.

* ``plan``: parsing and validation of the JSON ``kafka-reassign-partitions.sh`` reads, its
  fingerprint, its check against a snapshot of the cluster, and triage (already at target, moving,
  to move);
* ``schedule``: ordering strategies as Cruise Control names them, and a sliding window that keeps at
  most N moves in flight per broker and in the cluster;
* ``throttle``: the broker rates and topic ``*.replication.throttled.replicas`` lists exactly as
  Kafka's own tool computes them, rate parsing, and a duration estimate;
* ``executor``: the one part that talks to the brokers (through ``KafkaModule``'s clients).
"""
