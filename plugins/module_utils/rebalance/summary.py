# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before/after figures of a plan (docs/rebalance.md, "Summary")."""

from __future__ import annotations

import math

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import RESOURCES


def stats(values):
    """min, max, mean, population standard deviation and max/mean of a list of per-broker loads."""
    if not values:
        return {"min": 0, "max": 0, "mean": 0, "sd": 0, "max_to_mean": 0}
    n = len(values)
    mean = sum(values) / float(n)
    sd = math.sqrt(sum((v - mean) * (v - mean) for v in values) / n)  # x * x: inf for absurd loads, never OverflowError
    return {
        "min": _round(min(values)), "max": _round(max(values)), "mean": _round(mean), "sd": _round(sd),
        "max_to_mean": round(max(values) / mean, 4) if mean else 0,
    }


def _round(value):
    # Integers stay integers (counts, bytes); rates keep three decimals.
    if float(value).is_integer():
        return int(value)
    return round(value, 3)


def resource_summary(before_loads, after_loads, all_brokers, active):
    """{resource: {before: stats over all brokers, after: stats over the brokers kept}}.

    'after' leaves out drained brokers: they end empty by construction, and counting them would
    make a perfectly balanced result look uneven.
    """
    out = {}
    for r, name in enumerate(RESOURCES):
        out[name] = {
            "before": stats([before_loads[r][b] for b in all_brokers]),
            "after": stats([after_loads[r][b] for b in active]),
        }
    return out


def sd_reduction(summary, resource):
    """Fraction by which the per-broker standard deviation of a resource went down (1.0 = to zero)."""
    before = summary[resource]["before"]["sd"]
    after = summary[resource]["after"]["sd"]
    return 1.0 - after / before if before else 0.0
