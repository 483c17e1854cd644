"""`python -m edge collect`: training data made by the kiosk's own camera path.

A model must be trained on the silhouettes the kiosk infers on. This tool runs
frames through the kiosk's own segmenter and walk gate (`edge.wiring.walk_step`,
with the same configuration the kiosk would load) and writes every accepted
walk in the Scoliosis1K / OpenGait layout that `gaitmil.data` reads:

    OUT/<subject>/<class>/<seq>_<angle>/<seq>_<angle>.pkl   uint8 [T, 64, 64] ([T, 128, 128])
    OUT/Scoliosis1K_<split>.json                           subject-disjoint TRAIN_SET / TEST_SET
    OUT/truth.json                                         label, severity, curve type, view, gait phase per walk
    OUT/walks.json                                         every walk, accepted or not, with its gate verdict

The kiosk's silhouettes are [T, 64, 44] (the model's 10-column cut already
made); they are written zero-padded back to 64 columns, so the loader's cut
gives back exactly what the kiosk infers on. `--input-height 128` makes them
for a 128x88 model: the gate normalises the camera-resolution mask to 128 px
(never a 64-px silhouette upsampled), written as [T, 128, 128].

Two inputs:

- a simulated stream (`--source 'sim://?seed=0&walks=400&view=mixed'`): the
  simulator's truth rides along (never inside a Frame); with `--clean DIR` the
  truth masks of the same kept frames are written as a second data set, so a
  model can be compared on clean and on kiosk silhouettes;
- walks a kiosk recorded with `privacy.record_walks` on (consented data
  collection on site; `--recordings DIR`), with labels joined later from
  clinical follow-up (`--labels CSV` with columns walk_id,label[,severity];
  label is negative, neutral or positive). Walks without a label are counted
  and left out.

This module imports no training code (gaitmil's loader reads what it writes),
so the kiosk's dependency rules hold. Simulated data are a pipeline check,
not a screening tool.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from edge.errors import EdgeError
from edge.sources.sim_truth import SimTruth, WalkTruth
from edge.types import Walk
from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.spec import (
    CLASSES,
    INPUT_HEIGHT,
    INPUT_RESOLUTIONS,
    add_input_height_argument,
    cut_columns,
    input_width,
)

if TYPE_CHECKING:
    from edge.settings import KioskConfig

VIEW_ANGLE = {"toward": "180", "away": "000", "side": "090", "lateral": "090", "unknown": "999"}
NOTE = (
    "Walks through the kiosk's own segmenter and walk gate. Simulated walks are a pipeline check, "
    "not a screening tool."
)


class CollectError(EdgeError):
    """Bad input to `edge collect` (labels file, recordings folder, output folder)."""


class SequenceInfo(TypedDict, total=False):
    """What truth.json says of a stored sequence beside its subject, class and length."""

    severity: float | None
    curve_type: str | None
    view: str | None
    straight_share: float | None
    source: str
    phase: list[float]  # the true gait phase of each stored frame
    site_id: str | None
    kiosk_id: str | None


# a stored sequence in truth.json: who, which class, how many frames, and its SequenceInfo
_SequenceHead = TypedDict(
    "_SequenceHead", {"subject_id": str, "class": str, "label": int, "frames": int}
)


class SequenceRecord(_SequenceHead, SequenceInfo):
    pass


class Label(TypedDict):
    label: int  # index into gaitcontract.spec.CLASSES
    severity: float | None


class _StreamPart(TypedDict):
    sequences: dict[str, SequenceRecord]
    clean: dict[str, SequenceRecord]
    verdicts: list[dict[str, object]]


@dataclass
class CollectedWalk:
    """One walk as the kiosk assembled it, with what the simulator knows about it."""

    walk: Walk
    truth: WalkTruth = field(default_factory=lambda: WalkTruth())
    clean: np.ndarray | None = None  # truth masks of the same kept frames, uint8 [N, H, W]
    phases: np.ndarray | None = None  # true gait phase of each kept frame, [N]


def kiosk_walks(
    cfg: KioskConfig, with_clean: bool = False, input_height: int = INPUT_HEIGHT
) -> Iterator[CollectedWalk]:
    """Every walk the kiosk configured by `cfg` assembles from its source, in order.

    The source, segmenter and gate are built exactly as `edge run` builds them, for a model
    of `input_height` (64: walks [N, 64, 44]; 128: [N, 128, 88]).
    """
    from edge.sources.base import good_frames
    from edge.sources.sim import SimSource
    from edge.wiring import make_assembler, make_segmenter, open_configured_source, walk_step

    source = open_configured_source(cfg)
    segmenter = make_segmenter(cfg, source)
    assembler = make_assembler(cfg, input_height)
    sim = (
        source if isinstance(source, SimSource) else None
    )  # the simulator knows each frame's truth
    truth = SimTruth(with_clean, input_height) if sim is not None else None
    with source:
        for frame in good_frames(source):  # an undecodable frame is skipped, as the kiosk does
            if truth is not None and sim is not None:
                truth.add(float(frame.timestamp), sim.last_truth)
            walk = walk_step(segmenter, assembler, frame)
            if walk is not None:
                yield _collected(walk, truth)
        walk = assembler.flush()
        if walk is not None:
            yield _collected(walk, truth)


def _collected(walk: Walk, truth: SimTruth | None) -> CollectedWalk:
    if truth is None:
        return CollectedWalk(walk)
    info, clean, phases = truth.take(walk)
    return CollectedWalk(walk, info, clean, phases)


def pad_to_canvas(silhouettes: np.ndarray) -> np.ndarray:
    """[T, 64, 44] -> [T, 64, 64] ([T, 128, 88] -> [T, 128, 128]) with zero columns, the inverse
    of gaitcontract.silhouette.cut."""
    height = int(silhouettes.shape[1])
    if INPUT_RESOLUTIONS.get(height) != silhouettes.shape[2]:
        raise CollectError(
            f"silhouettes {silhouettes.shape} are not a model input of the contract "
            f"({', '.join(f'{h}x{w}' for h, w in INPUT_RESOLUTIONS.items())})"
        )
    columns = cut_columns(height)
    out = np.zeros((silhouettes.shape[0], height, height), np.uint8)
    out[:, :, columns : height - columns] = silhouettes
    return out


class LayoutWriter:
    """Writes walks in the Scoliosis1K layout, one subject per walk unless told otherwise."""

    def __init__(self, out: Path, input_height: int = INPUT_HEIGHT) -> None:
        self.out = Path(out)
        self.input_height = input_height
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CollectError(
                f"cannot create the output folder {self.out}: {exc.strerror}"
            ) from exc
        self.sequences: dict[str, SequenceRecord] = {}
        self.seq_per_subject: Counter[str] = Counter()

    def write(self, subject: str, label: int, silhouettes: np.ndarray, info: SequenceInfo) -> str:
        if silhouettes.shape[1:] != (self.input_height, input_width(self.input_height)):
            # never resized: a 64-px silhouette upsampled to 128 px holds no finer trunk cues
            raise CollectError(
                f"walk of {subject} has silhouettes {silhouettes.shape[1:]}, this data set is "
                f"{self.input_height}x{input_width(self.input_height)} (--input-height "
                f"{self.input_height}): collect it again at that height from the camera"
            )
        seq = self.seq_per_subject[subject]
        self.seq_per_subject[subject] += 1
        folder = f"{seq:03d}_{VIEW_ANGLE.get(str(info.get('view')), '999')}"
        rel = f"{subject}/{CLASSES[label]}/{folder}"
        target = self.out / rel
        target.mkdir(parents=True, exist_ok=True)
        with open(target / f"{folder}.pkl", "wb") as fh:
            pickle.dump(pad_to_canvas(silhouettes), fh)
        self.sequences[rel] = {
            "subject_id": subject,
            "class": CLASSES[label],
            "label": int(label),
            "frames": int(len(silhouettes)),
            **info,
        }
        return rel

    def finish(
        self, split_name: str, test_fraction: float, seed: int, extra: Mapping[str, object]
    ) -> dict[str, object]:
        train, test = split_subjects(self.sequences, test_fraction, seed)
        (self.out / f"Scoliosis1K_{split_name}.json").write_text(
            json.dumps({"TRAIN_SET": train, "TEST_SET": test}, indent=1)
        )
        (self.out / "truth.json").write_text(
            json.dumps(
                {
                    "note": NOTE,
                    **extra,
                    "input_height": self.input_height,
                    "sequences": self.sequences,
                },
                indent=1,
                default=_jsonable,
            )
        )
        per_class = Counter(s["class"] for s in self.sequences.values())
        return {
            "out": str(self.out),
            "sequences": len(self.sequences),
            "train_subjects": len(train),
            "test_subjects": len(test),
            "input_height": self.input_height,
            "sequences_per_class": {c: per_class.get(c, 0) for c in CLASSES},
            "split": f"Scoliosis1K_{split_name}.json",
        }


def split_subjects(
    sequences: Mapping[str, SequenceRecord], test_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Subject-disjoint train/test lists, stratified by each subject's class."""
    if not 0.0 <= test_fraction <= 1.0:
        raise CollectError(
            f"--test-fraction {test_fraction} must be in [0, 1] (1: a test-only set)"
        )
    rng = np.random.default_rng([seed, 0x5917])
    by_class: dict[int, list[str]] = {}
    for seq in sequences.values():
        ids = by_class.setdefault(seq["label"], [])
        if seq["subject_id"] not in ids:
            ids.append(seq["subject_id"])
    train: list[str] = []
    test: list[str] = []
    for label in sorted(by_class):
        ids = [str(i) for i in rng.permutation(sorted(by_class[label]))]
        n_test = int(round(test_fraction * len(ids)))
        test += ids[:n_test]
        train += ids[n_test:]
    return sorted(train), sorted(test)


def _collect_stream(job: tuple[str | None, str, str, str | None, str, int]) -> _StreamPart:
    """One source's walks into `out` (a worker process runs one of these per source)."""
    from edge.config import load_config

    config, uri, out, clean_out, prefix, height = job
    cfg = load_config(config, overrides={"source.uri": uri})
    writer, clean_writer = (
        LayoutWriter(Path(out), height),
        (LayoutWriter(Path(clean_out), height) if clean_out else None),
    )
    verdicts: list[dict[str, object]] = []
    for item in kiosk_walks(cfg, with_clean=clean_writer is not None, input_height=height):
        walk, truth = item.walk, item.truth
        verdicts.append(
            {
                "source": uri,
                "walk_id": walk.walk_id,
                "retake_reason": walk.retake_reason,
                "quality": walk.quality.as_dict(),
                **truth,
            }
        )
        label = truth.get("label")
        if walk.retake_reason is not None or label is None:
            continue
        # one folder per simulated child: a child walks once, or `repeats` times (sim:// option)
        child = truth.get("subject_index")
        child = int(truth["walk_index"]) if child is None or int(child) < 0 else int(child)
        subject = f"{prefix}{child:05d}"
        info = SequenceInfo(
            severity=truth.get("severity"),
            curve_type=truth.get("curve_type"),
            view=truth.get("view"),
            straight_share=truth.get("straight_share"),
            source=uri,
        )
        if item.phases is not None:  # the true gait phase (stride fraction) of each stored frame
            info["phase"] = [round(float(p), 4) for p in item.phases]
        writer.write(subject, int(label), walk.silhouettes, info)
        if clean_writer is not None and item.clean is not None:
            clean_writer.write(subject, int(label), item.clean, info)
    return {
        "sequences": writer.sequences,
        "clean": clean_writer.sequences if clean_writer else {},
        "verdicts": verdicts,
    }


def collect_sim(
    config: str | None,
    sources: list[str],
    out: Path,
    clean_out: Path | None,
    split_name: str,
    test_fraction: float,
    seed: int,
    workers: int = 1,
    input_height: int = INPUT_HEIGHT,
) -> dict[str, object]:
    """Simulated walks through the kiosk path into `out` (and their clean masks into `clean_out`),
    at the model's `input_height` (64 or 128).

    Each source (one sim:// stream, e.g. one seed) runs in its own process when
    `workers` > 1; subject ids are prefixed by the source's position when there are several.
    """
    start = time.perf_counter()
    writer = LayoutWriter(out, input_height)
    clean_writer = LayoutWriter(clean_out, input_height) if clean_out else None
    jobs = [
        (
            config,
            uri,
            str(out),
            str(clean_out) if clean_out else None,
            f"{i}" if len(sources) > 1 else "",
            input_height,
        )
        for i, uri in enumerate(sources)
    ]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            parts = list(pool.map(_collect_stream, jobs))
    else:
        parts = [_collect_stream(job) for job in jobs]
    verdicts: list[dict[str, object]] = []
    for part in parts:
        writer.sequences.update(part["sequences"])
        if clean_writer is not None:
            clean_writer.sequences.update(part["clean"])
        verdicts += part["verdicts"]
    extra = {"sources": sources, "generator": "edge collect (kiosk path)"}
    summary = writer.finish(split_name, test_fraction, seed, extra)
    (Path(out) / "walks.json").write_text(json.dumps(verdicts, indent=1, default=_jsonable))
    if clean_writer is not None:
        clean_writer.finish(
            split_name, test_fraction, seed, {**extra, "generator": "edge collect (clean masks)"}
        )
    reasons = Counter(v["retake_reason"] or "accepted" for v in verdicts)
    summary.update(
        walks=len(verdicts), verdicts=dict(reasons), seconds=round(time.perf_counter() - start, 1)
    )
    return summary


def read_labels(path: Path) -> dict[str, Label]:
    """walk_id -> {label, severity} from a CSV with a header walk_id,label[,severity]."""
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise CollectError(f"cannot read the labels file {path}: {exc.strerror}") from exc
    labels: dict[str, Label] = {}
    for n, row in enumerate(rows, start=2):
        if "walk_id" not in row or "label" not in row:
            raise CollectError(
                f"{path}: needs the columns walk_id,label[,severity] (line 1 is the header)"
            )
        name = (row["label"] or "").strip().lower()
        if name not in CLASSES:
            raise CollectError(
                f"{path} line {n}: label {row['label']!r} is not one of {', '.join(CLASSES)}"
            )
        severity = row.get("severity")
        labels[row["walk_id"].strip()] = Label(
            label=CLASSES.index(name),
            severity=float(severity) if severity not in (None, "") else None,
        )
    return labels


def collect_recordings(
    recordings: Path,
    labels_csv: Path,
    out: Path,
    split_name: str,
    test_fraction: float,
    seed: int,
    input_height: int = INPUT_HEIGHT,
) -> dict[str, object]:
    """Walks recorded on site (privacy.record_walks) joined with labels from clinical follow-up;
    every recording must be at `input_height` (a kiosk records at its model's height)."""
    from edge.walks.record import read_walk

    files = sorted(Path(recordings).glob("*.npz"))
    if not files:
        raise CollectError(
            f"no recorded walks (*.npz) in {recordings}; a kiosk writes them with "
            "privacy.record_walks = true"
        )
    labels = read_labels(labels_csv)
    writer = LayoutWriter(out, input_height)
    unlabelled = refused = 0
    for path in files:
        silhouettes, _, meta = read_walk(path)
        truth = labels.get(str(meta.get("walk_id", path.stem)))
        if truth is None:
            unlabelled += 1
            continue
        if meta.get("retake_reason") or meta.get("outcome") == "retake" or len(silhouettes) == 0:
            refused += 1
            continue
        # one subject per walk: a recording carries no identity, only a walk id
        subject = str(meta.get("walk_id", path.stem))
        writer.write(
            subject,
            truth["label"],
            silhouettes,
            {
                "severity": truth["severity"],
                "view": meta.get("quality", {}).get("direction"),
                "site_id": meta.get("site_id"),
                "kiosk_id": meta.get("kiosk_id"),
            },
        )
    summary = writer.finish(
        split_name,
        test_fraction,
        seed,
        {"source": str(recordings), "generator": "edge collect (recordings)"},
    )
    summary.update(recordings=len(files), unlabelled=unlabelled, refused_by_gate=refused)
    return summary


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    from edge.config import load_config
    from edge.errors import ConfigError

    ap = argparse.ArgumentParser(
        prog="python -m edge collect",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )

    add_version_flag(ap)
    ap.add_argument("--out", required=True, help="output folder (Scoliosis1K layout)")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--source",
        action="append",
        help="a kiosk source URI, e.g. 'sim://?seed=0&walks=400&view=mixed'; repeat for several",
    )
    group.add_argument("--recordings", help="folder of walks recorded with privacy.record_walks")
    ap.add_argument(
        "--labels", help="with --recordings: CSV walk_id,label[,severity] from clinical follow-up"
    )
    ap.add_argument(
        "--config",
        help="kiosk TOML whose segmentation and walk settings to use (default: defaults)",
    )
    ap.add_argument(
        "--clean", help="with a sim:// source: also write the truth masks of the same frames here"
    )
    add_input_height_argument(
        ap,
        INPUT_HEIGHT,
        "the model's input height: 64 (64x44, the Scoliosis1K protocol) or 128 (128x88, "
        "made from the camera mask; .pkl files are [T, 128, 128])",
    )
    ap.add_argument("--split-name", default="kiosk", help="split file Scoliosis1K_<name>.json")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    ap.add_argument(
        "--workers", type=int, default=1, help="sources collected in parallel processes"
    )
    args = ap.parse_args(argv)
    try:
        if args.recordings:
            if not args.labels:
                raise CollectError("--recordings needs --labels CSV (walk_id,label[,severity])")
            summary = collect_recordings(
                Path(args.recordings),
                Path(args.labels),
                Path(args.out),
                args.split_name,
                args.test_fraction,
                args.seed,
                args.input_height,
            )
        else:
            load_config(args.config)  # a bad config fails here, before any worker starts
            summary = collect_sim(
                args.config,
                args.source,
                Path(args.out),
                Path(args.clean) if args.clean else None,
                args.split_name,
                args.test_fraction,
                args.seed,
                args.workers,
                args.input_height,
            )
    except (CollectError, ConfigError, EdgeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
