"""sim://?stall_after=N: a camera that hangs after N frames (blocks, yields nothing) until closed."""

from __future__ import annotations

import threading
import time

import pytest

from edge.errors import SourceError
from edge.sources import open_source


class Reader(threading.Thread):
    """Reads one frame in the background: a hung camera read must not block the test."""

    def __init__(self, source) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.outcome: str | None = None

    def run(self) -> None:
        try:
            next(self.source)
            self.outcome = "frame"
        except StopIteration:
            self.outcome = "end"


def test_stall_after_delivers_n_frames_then_blocks_until_closed():
    source = open_source("sim://?seed=1&walks=2&noise=0&stall_after=5").open()
    frames = [next(source) for _ in range(5)]
    assert [f.index for f in frames] == list(range(5))
    reader = Reader(source)
    reader.start()
    reader.join(timeout=0.5)
    # the simulation has many more frames (two walks), yet the sixth read neither returns nor ends
    assert reader.is_alive() and reader.outcome is None
    assert source.health()["frames"] == 5
    closed_at = time.monotonic()
    source.close()
    reader.join(timeout=2.0)
    assert not reader.is_alive()
    assert reader.outcome == "end"  # close() releases the hung read: a service stops promptly
    assert time.monotonic() - closed_at < 1.0


def test_stall_after_zero_hangs_at_once_and_reopening_starts_over():
    source = open_source("sim://?walks=1&noise=0", stall_after=0).open()
    reader = Reader(source)
    reader.start()
    reader.join(timeout=0.3)
    assert reader.is_alive()
    source.close()
    reader.join(timeout=2.0)
    assert reader.outcome == "end"
    with open_source("sim://?walks=1&noise=0&stall_after=2") as again:
        assert [f.index for f in (next(again), next(again))] == [0, 1]
        again.close()
        again.open()  # a reopened camera delivers its stall_after frames again
        assert next(again).index == 0


def test_without_stall_after_the_stream_flows_past_any_count():
    with open_source("sim://?walks=1&noise=0&gap_s=0.1") as source:
        assert source.stall_after is None
        assert sum(1 for _ in zip(range(40), source)) == 40


@pytest.mark.parametrize(
    "value, message", [("-1", "stall_after=-1 must be 0 or more"), ("x", "stall_after='x'")]
)
def test_bad_stall_after_is_refused(value, message):
    with pytest.raises(SourceError, match=message):
        open_source(f"sim://?stall_after={value}")
