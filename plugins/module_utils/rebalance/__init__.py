# Copyright: streamops.day2 contributors
# Apache License 2.0 (see LICENSE)
"""The bundled rebalance planner: a cluster model, weighted goals and a hill-climbing optimiser.

Pure Python, no service and no third-party library needed, so the same engine runs in the
``kafka_rebalance_plan`` module (managed node) and in the ``rebalance_plan`` filter (controller).
Entry point: :func:`ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan.plan_rebalance`.
"""
