"""One config surface: gaitmil.train's flags and its --config file are generated from
TrainConfig's fields, so every field has a flag, a file can hold any of them, and the flags the
Makefile, the docs and gaitmil.reproduce write keep their meaning."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from gaitcontract.errors import ConfigError
from gaitmil.dataclass_cli import fields_of, flag, negative_flag, to_argv, write_config_file
from gaitmil.reproduce import Plan, train_command, train_config
from gaitmil.train import parse_args
from gaitmil.train_config import TrainConfig, check_config

REPO = Path(__file__).resolve().parents[2]
TORCHRUN_FLAGS = {"--nproc_per_node", "--standalone"}  # in the same lines, not ours
REQUIRED = ["--data", "D", "--split", "118", "--out", "O"]


def other_value(field: dataclasses.Field, kind: type) -> object:
    """A value of the field's type that is not its default (and that a run accepts)."""
    default = None if field.default is dataclasses.MISSING else field.default
    if field.metadata["choices"]:
        return next(c for c in field.metadata["choices"] if c != default)
    if kind is bool:
        return not default
    if kind is int:
        return (default or 0) + 3
    if kind is float:
        return 0.375 if default != 0.375 else 0.25
    if kind is tuple:
        return (0.25, 0.75)
    if kind is dict:
        return {"embed_dim": 16}
    return f"value-of-{field.name}"


def test_every_field_has_a_flag_that_sets_it():
    argv: list[str] = []
    expected = {}
    for field, kind, _ in fields_of(TrainConfig):
        value = other_value(field, kind)
        expected[field.name] = value
        if kind is bool:
            argv.append(flag(field.name) if value else negative_flag(field))
        elif kind is tuple:
            argv += [flag(field.name), *(str(v) for v in value)]
        elif kind is dict:
            argv += [flag(field.name), json.dumps(value)]
        else:
            argv += [flag(field.name), str(value)]
    cfg = parse_args(argv)
    assert dataclasses.asdict(cfg) == expected
    assert isinstance(cfg.milestones, tuple)


def test_bools_take_both_spellings_and_the_old_ones():
    cfg = parse_args([*REQUIRED])
    assert cfg.eval_at_end is True and cfg.balance_classes is False
    cfg = parse_args([*REQUIRED, "--no-eval", "--balance-classes"])
    assert cfg.eval_at_end is False and cfg.balance_classes is True
    cfg = parse_args([*REQUIRED, "--no-eval", "--eval-at-end", "--no-balance-classes"])
    assert cfg.eval_at_end is True and cfg.balance_classes is False


def test_a_toml_config_file_with_flags_over_it(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'data = "build/data"\nsplit = "118"\nout = "build/run"\n'
        'lr = 1\niterations = 600\nbalance_classes = true\noptimizer = "adamw"\n'
        "milestones = [0.25, 0.5]\n[model_overrides]\nembed_dim = 16\n"
    )
    cfg = parse_args(["--config", str(path), "--lr", "0.001", "--no-balance-classes"])
    assert (cfg.data, cfg.split, cfg.out, cfg.iterations, cfg.optimizer) == (
        "build/data",
        "118",
        "build/run",
        600,
        "adamw",
    )
    assert cfg.lr == 0.001 and cfg.balance_classes is False  # the flags win over the file
    assert cfg.milestones == (0.25, 0.5) and cfg.model_overrides == {"embed_dim": 16}
    assert cfg.preset == "tiny"  # neither: the field's default
    assert isinstance(parse_args(["--config", str(path)]).lr, float)  # TOML's 1 is the float 1.0


def test_a_json_config_file_round_trips_a_config(tmp_path):
    cfg = TrainConfig(
        data="D", split="118", out="O", iterations=7, ema=0.9, milestones=(0.5,), resume=None
    )
    write_config_file(cfg, tmp_path / "c.json")
    assert parse_args(["--config", str(tmp_path / "c.json")]) == cfg


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"data": "D", "split": "1", "out": "O", "learning_rate": 0.1}', "unknown settings"),
        ('{"data": "D", "split": "1", "out": "O", "iterations": "many"}', "is not an int"),
        ('{"data": "D", "split": "1", "out": "O", "preset": "huge"}', "is not one of"),
        ('{"data": "D", "split": "1", "out": "O", "iterations": 0}', "must be positive"),
        ("{not json", "config file"),
    ],
)
def test_a_bad_config_file_is_refused_with_the_reason(tmp_path, capsys, body, message):
    (tmp_path / "c.json").write_text(body)
    with pytest.raises(SystemExit) as info:
        parse_args(["--config", str(tmp_path / "c.json")])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_required_settings_come_from_the_file_or_a_flag(tmp_path):
    (tmp_path / "c.json").write_text('{"split": "118", "out": "O"}')
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "c.json")])  # no data anywhere
    assert parse_args(["--config", str(tmp_path / "c.json"), "--data", "D"]).data == "D"


def documented_train_flags() -> set[str]:
    """Every --flag of a gaitmil.train command in the Makefile (TRAIN_CMD) and docs/MODEL.md."""
    found: set[str] = set()
    makefile = (REPO / "Makefile").read_text()
    train_cmd = re.search(r"^TRAIN_CMD = (.*?)(?<!\\)\n", makefile, re.S | re.M)
    assert train_cmd is not None
    found |= set(re.findall(r"(--[a-z][a-z-]*)", train_cmd.group(1)))
    doc = (REPO / "docs" / "MODEL.md").read_text()
    for block in re.findall(r"gaitmil\.train (.*?)(?:\n\n|```|`)", doc, re.S):
        found |= set(re.findall(r"(--[a-z][a-z_-]*)", block))
    return found


def test_the_flags_the_makefile_and_docs_use_still_exist():
    flags = documented_train_flags()
    assert {"--no-eval", "--balance-classes", "--calibration", "--max-minutes"} <= flags
    known = {"--config"}
    for field, kind, _ in fields_of(TrainConfig):
        known |= {flag(field.name), negative_flag(field)} if kind is bool else {flag(field.name)}
    assert flags - known - TORCHRUN_FLAGS == set()


def makefile_train_config(**overrides: str) -> TrainConfig:
    """TrainConfig of the Makefile's TRAIN_CMD, its variables expanded as make would (`VAR ?=`
    and `VAR =`, innermost first: $(ITERATIONS_$(INPUT_HEIGHT))); `overrides` as on make's
    command line."""
    makefile = (REPO / "Makefile").read_text()
    text = re.search(r"^TRAIN_CMD = (.*?)(?<!\\)\n", makefile, re.S | re.M).group(1)
    variables = dict(re.findall(r"^(\w+) \??=[ \t]*(\S*)$", makefile, re.M)) | overrides
    text = text.replace("\\\n", " ")
    while (expanded := re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[1]), text)) != text:
        text = expanded
    argv = shlex.split(text)
    return parse_args(argv[argv.index("gaitmil.train") + 1 :])


def test_the_makefile_training_command_parses_to_its_settings():
    cfg = makefile_train_config()
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.head_lr_mult, cfg.ema, cfg.clip_grad) == (
        "adamw",
        0.001,
        0.05,
        0.1,
        0.98,
        5.0,
    )
    assert (cfg.schedule_clock, cfg.calibration, cfg.train_eval_walks, cfg.patience) == (
        "iterations",
        "split",
        100,
        6,
    )
    assert cfg.balance_classes is True and cfg.eval_at_end is False
    # >= 500 validation walks of 1,600 (issue 25), at the Makefile's default INPUT_HEIGHT: the
    # shipped demo's 128x88, 320 iterations, in the -128 build folders
    assert (cfg.iterations, cfg.max_minutes, cfg.val_fraction, cfg.input_height) == (
        320,
        100.0,
        0.32,
        128,
    )
    assert str(cfg.data) == "build/kiosk-train-128" and str(cfg.out) == "build/demo-run-128"


def test_the_makefile_keeps_the_64_px_recipe_in_its_own_folders():
    cfg = makefile_train_config(INPUT_HEIGHT="64")
    assert (cfg.iterations, cfg.max_minutes, cfg.input_height) == (600, 65.0, 64)
    assert str(cfg.data) == "build/kiosk-train" and str(cfg.out) == "build/demo-run"


def test_reproduce_hands_a_train_config_and_shows_the_same_command(tmp_path):
    plan = Plan(data=Path("D"), splits=["118"], out=tmp_path, device="cpu", workers=8)
    cfg = train_config(plan, "118", "mil", tmp_path / "118" / "mil")
    assert train_command(plan, cfg) == " ".join(
        [sys.executable, "-m", "gaitmil.train"]
        + f"--data D --split 118 --out {tmp_path}/118/mil --preset base --pooling mil "
        "--iterations 20000 --batch-p 8 --batch-k 8 --frames 30 --lr 0.1 --schedule step "
        "--val-fraction 0.0 --patience 0 --device cpu --workers 8 --seed 0 --no-eval "
        "--save-every 1000 --log-every 100".split()
    )
    # the command and the config are one run: the flags parse back to the same TrainConfig
    assert parse_args(to_argv(cfg, list(TrainConfig.__dataclass_fields__))) == cfg
    (tmp_path / "118" / "mil").mkdir(parents=True)
    (tmp_path / "118" / "mil" / "last.pt").write_bytes(b"")
    resumed = train_config(plan, "118", "mil", tmp_path / "118" / "mil")
    assert resumed.resume == str(tmp_path / "118" / "mil" / "last.pt")
    assert train_command(plan, resumed).endswith(f"--resume {tmp_path}/118/mil/last.pt")


@pytest.mark.parametrize(
    "name",
    [
        "triplet_weight",
        "supcon_weight",
        "walk_ce_weight",
        "screening_weight",
        "severity_rank_weight",
    ],
)
@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_a_loss_weight_must_be_finite_and_not_negative(name, bad):
    good = TrainConfig(data="D", split="118", out="O")
    check_config(good)
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} must be a finite weight"):
        check_config(dataclasses.replace(good, **{name: bad}))


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_the_severity_pair_gap_must_be_finite_degrees(bad):
    with pytest.raises(ConfigError, match="--severity-rank-gap"):
        check_config(TrainConfig(data="D", split="118", out="O", severity_rank_gap=bad))
