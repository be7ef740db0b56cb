# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One planner run in its own process (so its peak RSS is its own):

    python -m tests.bench.planner.worker model.json '{"seed": 1}'  ->  {"plan": ..., "summary": ..., "seconds": ..., "cpu": ...}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / ".build" / "collections"))

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance  # noqa: E402


def main():
    with open(sys.argv[1]) as handle:
        model = json.load(handle)
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    wall, cpu = time.perf_counter(), time.process_time()
    result = plan_rebalance(model, **options)
    result["seconds"] = time.perf_counter() - wall
    result["cpu"] = time.process_time() - cpu
    sys.stdout.write(json.dumps(result))  # dumps uses the C encoder, dump does not (a 700,000-entry plan: 5 s)


if __name__ == "__main__":
    main()
