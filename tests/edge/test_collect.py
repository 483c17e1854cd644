"""edge.collect: training data from the kiosk's own segmenter and gate, equal to what the kiosk infers on."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from edge.collect import (
    CollectError,
    collect_recordings,
    collect_sim,
    kiosk_walks,
    pad_to_canvas,
    read_labels,
)
from edge.config import load_config
from gaitcontract.silhouette import cut
from gaitmil.data import load_pkl
from tests.edge.kiosk_support import (
    run_kiosk,
    subscriber_for,
)

SIM = "sim://?seed=3&walks=3&view=mixed"


def _config_file(tmp_path, broker_url, model, record_dir):
    """One TOML for both the kiosk run and the collector: the same settings by construction."""
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[kiosk]\nsite_id = "test-site"\nkiosk_id = "test-kiosk"\n'
        f'[source]\nuri = "{SIM}"\n'
        f'[model]\npath = "{model}"\n'
        f'[mqtt]\nurl = "{broker_url}"\n'
        f"[outbox]\nflush_seconds = 5.0\n"
        f'[privacy]\nrecord_walks = true\nrecord_dir = "{record_dir}"\n'
    )
    return path


def test_dataset_silhouettes_equal_what_the_kiosk_infers_on(tmp_path, mosquitto, kiosk_model):
    record_dir = tmp_path / "recorded"
    config = _config_file(tmp_path, mosquitto.url, kiosk_model, record_dir)
    cfg = load_config(config, env={})
    sub = subscriber_for(mosquitto)
    try:
        kiosk = run_kiosk(cfg)
        assert kiosk.exit_code == 0 and kiosk.results == 3
        assert sub.wait_for(3, timeout=10)
    finally:
        sub.stop()
    # the kiosk recorded exactly the silhouettes it classified (privacy.record_walks)
    recorded = {}
    for path in record_dir.glob("*.npz"):
        with np.load(path, allow_pickle=False) as data:
            recorded[float(data["timestamps"][0])] = data["silhouettes"]
    collected = list(kiosk_walks(cfg, with_clean=True))
    accepted = [c for c in collected if c.walk.retake_reason is None]
    assert len(collected) == 3 and len(accepted) == len(recorded) >= 2
    for item in accepted:
        np.testing.assert_array_equal(
            item.walk.silhouettes, recorded[float(item.walk.timestamps[0])]
        )
        assert item.truth["label"] in (0, 1, 2) and item.truth["view"] in ("toward", "away")
        assert item.clean.shape == item.walk.silhouettes.shape and len(item.phases) == len(
            item.walk.timestamps
        )
    # and the written data set gives back the same arrays through the training loader
    out = tmp_path / "data"
    summary = collect_sim(str(config), [SIM], out, tmp_path / "clean", "kiosk", 0.0, seed=0)
    assert summary["sequences"] == len(accepted) and summary["verdicts"].get("accepted") == len(
        accepted
    )
    truth = json.loads((out / "truth.json").read_text())["sequences"]
    by_frames = {len(c.walk.silhouettes): c for c in accepted}
    for rel, info in truth.items():
        loaded = cut(load_pkl(next((out / rel).glob("*.pkl"))))
        np.testing.assert_array_equal(loaded, by_frames[info["frames"]].walk.silhouettes)
        assert (tmp_path / "clean" / rel).is_dir()
    split = json.loads((out / "Scoliosis1K_kiosk.json").read_text())
    assert sorted(split["TRAIN_SET"]) == sorted({info["subject_id"] for info in truth.values()})


def test_padding_is_the_inverse_of_the_model_cut():
    sil = (np.random.default_rng(0).random((5, 64, 44)) > 0.5).astype(np.uint8) * 255
    np.testing.assert_array_equal(cut(pad_to_canvas(sil)), sil)


def test_recorded_walks_join_labels_from_follow_up(tmp_path):
    from edge.walks.record import record_walk

    rec = tmp_path / "rec"
    sil = np.zeros((40, 64, 44), np.uint8)
    sil[:, 10:60, 15:30] = 255
    for walk_id, outcome in (
        ("w1", "refer_for_clinical_exam"),
        ("w2", "no_referral_indicated"),
        ("w3", "retake"),
        ("w4", "no_referral_indicated"),
    ):
        record_walk(
            rec,
            walk_id,
            sil,
            np.arange(40, dtype=np.float64),
            {
                "outcome": outcome,
                "quality": {"direction": "toward"},
                "site_id": "s",
                "kiosk_id": "k",
            },
        )
    labels = tmp_path / "labels.csv"
    labels.write_text("walk_id,label,severity\nw1,positive,24\nw2,negative,\nw3,neutral,12\n")
    summary = collect_recordings(rec, labels, tmp_path / "out", "site", 0.0, seed=0)
    assert (summary["sequences"], summary["unlabelled"], summary["refused_by_gate"]) == (2, 1, 1)
    written = sorted((tmp_path / "out").rglob("*.pkl"))
    assert [(p.parts[-4], p.parts[-3]) for p in written] == [("w1", "positive"), ("w2", "negative")]
    with open(written[0], "rb") as fh:
        np.testing.assert_array_equal(cut(pickle.load(fh)), sil)


def test_bad_labels_are_named(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("walk_id,label\nw1,scoliosis\n")
    with pytest.raises(CollectError, match="line 2: label 'scoliosis' is not one of negative"):
        read_labels(bad)
    with pytest.raises(CollectError, match="no recorded walks"):
        collect_recordings(tmp_path, bad, tmp_path / "out", "site", 0.0, seed=0)


def test_repeated_walks_of_one_child_share_a_subject_folder(tmp_path):
    """sim:// repeats=2: each simulated child walks toward and away; both walks land under one
    subject (so gaitmil's P x K sampler and triplet see two walks of that child)."""
    out = tmp_path / "kiosk"
    summary = collect_sim(
        None, ["sim://?seed=500&walks=4&view=mixed&repeats=2"], out, None, "kiosk", 0.0, seed=0
    )
    seqs = json.loads((out / "truth.json").read_text())["sequences"]
    by_subject: dict[str, list[dict]] = {}
    for s in seqs.values():
        by_subject.setdefault(s["subject_id"], []).append(s)
    assert summary["sequences"] >= 3 and len(by_subject) <= 2
    two = [walks for walks in by_subject.values() if len(walks) == 2]
    assert two, by_subject  # at least one child kept both walks through the gate
    for walks in two:
        assert {w["view"] for w in walks} == {"toward", "away"}
        assert len({w["class"] for w in walks}) == 1 and len({w["severity"] for w in walks}) == 1


# -- --input-height 128 (issue 25: trunk cues bigger than a pixel) ---------------------------


def test_collect_at_128_px_writes_canvases_the_loader_reads_at_128(tmp_path, capsys):
    from edge.collect import main
    from gaitcontract.errors import DatasetError
    from gaitmil.data import Scoliosis1K

    out, clean = tmp_path / "data128", tmp_path / "clean128"
    code = main(
        [
            "--source",
            "sim://?seed=3&walks=2&view=toward",
            "--out",
            str(out),
            "--clean",
            str(clean),
            "--input-height",
            "128",
            "--test-fraction",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["input_height"] == 128 and summary["sequences"] >= 1
    for folder in (out, clean):
        pkls = sorted(folder.rglob("*.pkl"))
        assert pkls and all(load_pkl(p).shape[1:] == (128, 128) for p in pkls)
        assert json.loads((folder / "truth.json").read_text())["input_height"] == 128
    data = Scoliosis1K(out, "kiosk", "train", frames=8, train_sampling=False)
    assert data.input_height == 128
    sil, *_ = data[0]
    assert tuple(sil.shape) == (8, 128, 88) and float(sil.max()) == 1.0
    # a 64-px model cannot train on it: refused, never resized
    with pytest.raises(DatasetError, match="never resized"):
        Scoliosis1K(out, "kiosk", "train", frames=8, train_sampling=False, input_height=64)


def test_padding_is_the_inverse_of_the_model_cut_at_128():
    sil = (np.random.default_rng(0).random((5, 128, 88)) > 0.5).astype(np.uint8) * 255
    padded = pad_to_canvas(sil)
    assert padded.shape == (5, 128, 128)
    np.testing.assert_array_equal(cut(padded), sil)
    with pytest.raises(CollectError, match="not a model input"):
        pad_to_canvas(np.zeros((5, 128, 44), np.uint8))


def test_recordings_of_another_height_are_refused_not_resized(tmp_path):
    from edge.walks.record import record_walk

    rec = tmp_path / "rec"
    record_walk(
        rec,
        "w1",
        np.zeros((40, 64, 44), np.uint8),
        np.arange(40, dtype=np.float64),
        {"outcome": "no_referral_indicated", "quality": {}},
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("walk_id,label\nw1,negative\n")
    with pytest.raises(CollectError, match="collect it again at that height"):
        collect_recordings(rec, labels, tmp_path / "out", "site", 0.0, seed=0, input_height=128)
