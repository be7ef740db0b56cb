# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""python -m streamops_consumer: the container command, configured by environment variables (README.md).

Exit codes: 0 after SIGTERM/SIGINT (committed, left the group), 1 after a fatal error, 2 for bad settings.
"""

from __future__ import annotations

import json
import sys

from .helper import run
from .settings import Settings, SettingsError


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print(__doc__.strip())
        return 0 if argv[0] in ("-h", "--help") else 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(json.dumps({"event": "bad-settings", "error": str(exc)}), flush=True)
        return 2
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
