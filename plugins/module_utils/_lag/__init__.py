# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consumer lag for ``kafka_lag_info`` (private: may change without notice).

- :mod:`.rules`: Burrow's status rules over a window of samples, and thresholds (pure).
- :mod:`.report`: the per group / topic / partition result from raw samples (pure).
- :mod:`.collect`: the Kafka side: batched admin calls and the record-timestamp reads.

The pure parts need no broker and no third-party library, so unit tests cover them fully.
"""
