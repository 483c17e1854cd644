"""Benchmarks for gaitmil-edge: latency per stage and backend, the kiosk pipeline, accuracy of the
precision variants, and MQTT broker fan-in.

Entry points (each prints a Markdown report and can write JSON):

- ``python -m benchmarks.latency``   per-stage latency, interleaved over backends; ``--pipeline`` for the kiosk loop
- ``python -m benchmarks.accuracy``  precision variants on held-out simulated walks
- ``python -m benchmarks.fanin``     N simulated kiosks into one broker and one dashboard subscriber

Nothing heavy is imported here; each module imports what it needs.
"""

from benchmarks.errors import BenchmarkError

__all__ = ["BenchmarkError"]
