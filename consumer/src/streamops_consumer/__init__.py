# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""streamops-consumer: a Kafka consume-process-produce loop whose instances hand partitions over without losing
or repeating records (exactly-once or at-least-once), so that they can be moved between nodes at any time.

    from streamops_consumer import Settings, run
    run(Settings.from_env(), process=lambda msg: [(msg.key(), msg.value().upper())])
"""

from __future__ import annotations

from .helper import ConsumerHelper, Fatal, Later, Output, Unprocessed, passthrough, run
from .settings import Settings, SettingsError

__all__ = ["ConsumerHelper", "Fatal", "Later", "Output", "Settings", "SettingsError", "Unprocessed", "passthrough", "run"]
__version__ = "0.1.0"
