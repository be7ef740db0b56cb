# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bundled rebalance planner: a cluster model, weighted goals and a hill-climbing optimiser.

Pure Python, no service and no third-party library needed, so the same engine runs in the
``kafka_rebalance_plan`` module (managed node) and in the ``rebalance_plan`` filter (controller).
Entry point: :func:`ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan.plan_rebalance`.
"""
