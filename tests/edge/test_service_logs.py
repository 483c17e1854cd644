"""Structured logging: plain lines or one JSON object per line, with extra fields."""

from __future__ import annotations

import io
import json
import logging

import pytest

from edge.logs import setup_logging


def test_json_lines_carry_extras_and_exceptions():
    stream = io.StringIO()
    setup_logging("info", json_lines=True, stream=stream)
    log = logging.getLogger("edge.test")
    log.info("walk %s done", "w1", extra={"walk_id": "w1", "outcome": "retake"})
    try:
        raise ValueError("broken frame")
    except ValueError:
        log.exception("frame failed")
    log.debug("not shown at info")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["message"] == "walk w1 done" and lines[0]["level"] == "info"
    assert lines[0]["walk_id"] == "w1" and lines[0]["outcome"] == "retake"
    assert lines[0]["logger"] == "edge.test" and lines[0]["time"].endswith("Z")
    assert "ValueError: broken frame" in lines[1]["exception"]


def test_plain_lines_and_bad_level():
    stream = io.StringIO()
    setup_logging("WARNING", stream=stream)
    logging.getLogger("edge.test").info("hidden")
    logging.getLogger("edge.test").warning("shown")
    assert stream.getvalue().strip().endswith("WARNING edge.test: shown")
    with pytest.raises(ValueError, match="log level"):
        setup_logging("loud")
