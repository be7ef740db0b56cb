# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The start gate of a warm hand-over: subscribe only once no member of another generation is left in the group.

Joining while the old instance still works would trigger a rebalance in the middle of its work and let two
generations run side by side; waiting outside the group lets the old instance commit and leave first, and the
new one (already connected, its producer initialised) joins a group with nobody to take partitions from.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException

from .settings import CLIENT_ID_PREFIX


def nap(seconds, should_stop, step=0.02):
    """Sleep up to `seconds`, in short steps so that a stop request (a signal handler's flag) cuts it short."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(step, left))


def others(members, generation):
    """Client ids of the members that are not of `generation` (any client id not made by the helper counts)."""
    prefix = "%s:%s:" % (CLIENT_ID_PREFIX, generation)
    return sorted(member.client_id or "" for member in members if not (member.client_id or "").startswith(prefix))


def wait_for_others_to_leave(admin, group, generation, poll_seconds, should_stop, emit):
    """Poll the group's members until none of another generation is left; the seconds waited, None if stopped."""
    started = time.monotonic()
    reported = None
    while not should_stop():
        try:
            description = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            blocking = others(description.members, generation)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is not None and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                blocking = []  # no such group yet: nobody to wait for
            else:
                emit("gate-error", error=str(exc))
                nap(poll_seconds, should_stop)
                continue
        if not blocking:
            return time.monotonic() - started
        if blocking != reported:  # one line per change, not one per poll
            emit("gate-waiting", others=blocking, waited_s=round(time.monotonic() - started, 3))
            reported = blocking
        nap(poll_seconds, should_stop)
    return None
