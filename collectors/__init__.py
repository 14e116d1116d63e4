"""GPU kernel benchmarks that fill the performance database.

One timer (timer.py), one file per op family (ops/), thin backend adapters (backends/), planning
(plan.py), resumable runs (runner.py), Ray fan-out (fleet.py) and adaptive sampling (adaptive.py).
Collectors never import the estimator: model-driven shapes arrive as op cases.
"""
COLLECTOR_VERSION = "0.1.0"
