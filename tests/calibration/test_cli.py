"""python -m calibration: --help lists defaults and choices; --version names the release."""

from __future__ import annotations

import pytest

from calibration.__main__ import main
from calibration.demo_artifacts import main as demo_main


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (
            ["quantize", "--help"],
            ["{cpu,tensorrt}", "{entropy,minmax,percentile}", "(default: minmax)"],
        ),
        (["report", "--help"], ["(default: 0.5)", "(default: cpu)"]),
        (["latency", "--help"], ["(default: 20)"]),
        (["collect", "--help"], ["(default: 118)"]),
    ],
)
def test_help_shows_defaults_and_choices(argv, shown, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # wrapping depends on the terminal
    for text in shown:
        assert text in out, text
    assert "(default: None)" not in out


def test_demo_artifacts_help_and_version(capsys):
    with pytest.raises(SystemExit):
        demo_main(["--help"])
    assert "(default: models/demo)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "gaitmil-edge" in capsys.readouterr().out
