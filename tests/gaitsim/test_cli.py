"""The preview sheet and the benchmark run and produce what they promise."""

import json

import cv2

from gaitsim import bench, preview


def test_preview_writes_a_sheet_with_a_row_per_class(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert preview.main(["--out", str(out), "--seed", "1"]) == 0
    img = cv2.imread(str(out))
    assert img is not None
    assert img.shape[0] == 3 * preview.PANEL_H + 28
    # colour, depth, mask, then the gait-cycle tiles: not blank
    assert img[: preview.PANEL_H].std() > 20
    assert "wrote" in capsys.readouterr().out


def test_bench_prints_numbers(capsys):
    assert bench.main(["--frames", "10", "--walks", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    numbers = json.loads(last)
    assert (
        numbers["depth+mask fps (cpu)"] > 0 and numbers["sample_walks 30-frame walks/s (cpu)"] > 0
    )
