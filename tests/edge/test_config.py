"""edge.config: one validated tree, readable errors, environment overrides, threshold from the model card."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from edge.config import (
    TABLE_BEGIN,
    TABLE_END,
    effective_config,
    key_table,
    load_config,
    read_password,
    schema_text,
)
from edge.errors import ConfigError, EdgeError
from edge.publishing.broker_url import parse_broker_url
from edge.screening.threshold import DEFAULT_THRESHOLD
from edge.settings import KioskConfig
from edge.wiring import build_components, screening_threshold

EXAMPLE = Path(str(resources.files("edge").joinpath("data", "kiosk.example.toml")))
ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "kiosk.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_config_is_valid_and_matches_the_defaults():
    cfg = load_config(EXAMPLE, env={})
    defaults = load_config(None, env={})
    # the example documents the defaults: loading it must give the same tree
    assert cfg.model_dump() == defaults.model_dump()
    assert isinstance(cfg, KioskConfig)
    assert cfg.mqtt.qos == 1 and cfg.mqtt.protocol == "5" and cfg.privacy.record_walks is False


def test_file_values_are_typed(tmp_path):
    path = write(
        tmp_path,
        """
state_dir = "/var/lib/gaitmil-edge"
[kiosk]
site_id = "school-12"
kiosk_id = "corridor-b"
[mqtt]
url = "mqtts://broker.example:8883"
protocol = 3.1
allow_protocol_311 = true
qos = 2
[walk]
min_frames = 45
""",
    )
    cfg = load_config(path, env={})
    assert cfg.kiosk.site_id == "school-12"
    assert cfg.mqtt.protocol == "3.1.1"
    assert cfg.mqtt.qos == 2
    assert cfg.walk.min_frames == 45
    assert cfg.outbox_path == Path("/var/lib/gaitmil-edge/outbox.sqlite3")
    assert cfg.client_id == "gaitmil-school-12-corridor-b"


def test_unknown_key_names_the_dotted_key_and_what_is_allowed(tmp_path):
    path = write(tmp_path, "[walk]\nmin_frame = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    text = str(err.value)
    assert "walk.min_frame" in text and "unknown key" in text
    assert "min_frames" in text  # the allowed keys are listed
    assert str(path) in text


def test_bad_values_name_key_value_source_and_allowed(tmp_path):
    path = write(
        tmp_path, '[model]\nrunner = "tensorflow"\n[mqtt]\nqos = 0\n[kiosk]\nsite_id = "a/b"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    text = str(err.value)
    assert "model.runner = 'tensorflow'" in text and "'onnxruntime', 'torch' or 'tensorrt'" in text
    assert "mqtt.qos = 0" in text and "1 or 2" in text
    assert "kiosk.site_id = 'a/b'" in text
    assert f"file {path}" in text
    assert isinstance(err.value, EdgeError)


def test_inline_password_is_refused_with_the_fix(tmp_path):
    path = write(tmp_path, '[mqtt]\nusername = "k1"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert "password_file" in str(err.value)
    assert "hunter2" not in str(err.value)  # never echo a secret
    with pytest.raises(ConfigError, match="password_file"):
        load_config(None, env={"GAITMIL_MQTT__PASSWORD": "hunter2"})


def test_environment_overrides_file_and_overrides_beat_environment(tmp_path):
    path = write(tmp_path, '[mqtt]\nurl = "mqtt://file-host:1883"\nkeepalive = 10\n')
    env = {
        "GAITMIL_MQTT__URL": "mqtt://env-host:1884",
        "GAITMIL_MQTT__TLS__INSECURE": "true",
        "GAITMIL_MQTT__QOS": "2",
        "GAITMIL_STATE_DIR": "/tmp/state-x",
        "GAITMIL_SOMETHING_ELSE": "ignored: not SECTION__KEY",
        "PATH": "/usr/bin",
    }
    cfg = load_config(path, env=env)
    assert cfg.mqtt.url == "mqtt://env-host:1884"
    assert cfg.mqtt.keepalive == 10
    assert cfg.mqtt.tls.insecure is True and cfg.mqtt.qos == 2
    assert cfg.state_dir == Path("/tmp/state-x")
    cfg = load_config(
        path, overrides={"mqtt.url": "mqtt://flag-host:1", "model": {"runner": "torch"}}, env=env
    )
    assert cfg.mqtt.url == "mqtt://flag-host:1"
    assert cfg.model.runner == "torch"


def test_environment_errors_name_the_variable():
    with pytest.raises(ConfigError) as err:
        load_config(None, env={"GAITMIL_WALK__MIN_FRAMES": "many"})
    assert "environment GAITMIL_WALK__MIN_FRAMES" in str(err.value) and "'many'" in str(err.value)
    with pytest.raises(ConfigError, match="unknown section 'mqqt'"):
        load_config(None, env={"GAITMIL_MQQT__URL": "mqtt://x"})


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mqtt://h", ("h", 1883, False)),
        ("mqtts://h", ("h", 8883, True)),
        ("mqtt://10.0.0.2:1999", ("10.0.0.2", 1999, False)),
    ],
)
def test_broker_url_parsing(url, expected):
    address = parse_broker_url(url)
    assert (address.host, address.port, address.tls) == expected


@pytest.mark.parametrize(
    "url", ["http://h", "mqtt://", "mqtt://u:p@h:1", "mqtt://h:99999", "mqtt://h/x"]
)
def test_bad_broker_urls_are_refused(url):
    with pytest.raises(ConfigError, match="mqtt.url"):
        load_config(None, overrides={"mqtt.url": url}, env={})


def test_threshold_from_config_card_or_default(tmp_path):
    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    cfg = load_config(None, overrides={"model.path": str(model)}, env={})
    resolved = screening_threshold(cfg)
    assert resolved.value == DEFAULT_THRESHOLD and resolved.source.startswith("default")
    assert resolved.origin == "default"
    (model.parent / "card.json").write_text(json.dumps({"referral_threshold": 0.37}))
    cfg = load_config(None, overrides={"model.path": str(model)}, env={})
    resolved = screening_threshold(cfg)
    assert resolved.value == pytest.approx(0.37) and resolved.origin == "model card"
    eff = effective_config(cfg, resolved)
    assert eff["screening"]["threshold"] == pytest.approx(0.37)
    assert "model card" in eff["screening"]["threshold_source"]
    cfg = load_config(
        None, overrides={"model.path": str(model), "screening.threshold": 0.6}, env={}
    )
    resolved = screening_threshold(cfg)
    assert (resolved.value, resolved.source, resolved.origin) == (0.6, "config", "config")


@pytest.mark.parametrize("card", ['{"referral_threshold": 1.5}', '{"other": 1}', "not json"])
def test_broken_model_card_is_an_error_at_start_up(tmp_path, card):
    model = tmp_path / "model.onnx"
    (tmp_path / "card.json").write_text(card)
    cfg = load_config(None, overrides={"model.path": str(model)}, env={})
    with pytest.raises(ConfigError, match="card.json"):
        screening_threshold(cfg)
    with pytest.raises(ConfigError, match="card.json"):
        build_components(cfg, runner=object())  # before anything is opened


def test_password_file_is_read_and_masked(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pass\n")
    cfg = load_config(
        None, overrides={"mqtt.username": "kiosk-7", "mqtt.password_file": str(secret)}, env={}
    )
    assert read_password(cfg) == "s3cret-pass"
    text = json.dumps(effective_config(cfg, screening_threshold(cfg)))
    assert "s3cret-pass" not in text
    assert "kiosk-7" not in text  # username masked too
    unmasked = effective_config(cfg, screening_threshold(cfg), mask_secrets=False)
    assert "kiosk-7" in json.dumps(unmasked)


def test_missing_secret_files_and_half_tls_pairs_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="mqtt.password_file.*not found"):
        load_config(
            None,
            overrides={"mqtt.username": "u", "mqtt.password_file": str(tmp_path / "nope")},
            env={},
        )
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        load_config(None, overrides={"mqtt.tls.cert_file": str(tmp_path / "c.pem")}, env={})
    with pytest.raises(ConfigError, match="username"):
        pw = write(tmp_path, "x", "pw")
        load_config(None, overrides={"mqtt.password_file": str(pw)}, env={})


def test_record_walks_needs_a_folder():
    with pytest.raises(ConfigError, match="record_dir"):
        load_config(None, overrides={"privacy.record_walks": True}, env={})


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[mqtt\nurl="), env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", env={})


def test_effective_config_is_json_with_derived_values(tmp_path):
    cfg = load_config(None, overrides={"state_dir": str(tmp_path)}, env={})
    eff = effective_config(cfg, screening_threshold(cfg))
    json.dumps(eff)  # plain data
    assert eff["outbox"]["path"] == str(tmp_path / "outbox.sqlite3")
    assert eff["mqtt"]["client_id"] == "gaitmil-site-0-kiosk-0"
    assert eff["logging"]["json"] is False


# -- [walk]: the walk gate's settings ---------------------------------------------------------


def _absent_run_that_ends_a_walk(assembler, segmenter) -> int:
    """Push one walk and the empty frames after it: how many empty frames until the walk came out."""
    from .pipeline_synth import walk_frames

    frames = walk_frames(45, gap_before=10, gap_after=40)
    for index, frame in enumerate(frames):
        if assembler.push(segmenter.segment(frame)) is not None:
            return index - 54  # the child is in view in frames 10..54
    raise AssertionError("the walk never ended")


def test_every_walk_key_reaches_the_kiosks_gate(tmp_path):
    from edge.segmentation.depth import DepthSegmenter
    from edge.segmentation.site import learn_site
    from edge.wiring import build_components, make_assembler

    from .pipeline_synth import empty_frames

    path = write(
        tmp_path,
        f"""
state_dir = "{tmp_path}"
[source]
fps = 15.0
[segmentation]
min_area = 900
[walk]
exit_frames = 9
stop_s = 2.5
rejoin_s = 0.0
straight_only = false
""",
    )
    cfg = load_config(path, env={})
    gate = make_assembler(cfg)
    assert gate.config is cfg.walk  # the section itself: no copy whose defaults could drift
    assert (gate.fps, gate.min_area_px, gate.config.stop_s, gate.config.straight_only) == (
        15.0,
        900,
        2.5,
        False,
    )
    # and it acts on it: the walk ends after exit_frames empty frames, in the kiosk's own parts
    parts = build_components(cfg, runner=object())
    try:
        assert parts.assembler.config.exit_frames == 9
        segmenter = DepthSegmenter(learn_site(empty_frames(10)))
        assert _absent_run_that_ends_a_walk(parts.assembler, segmenter) == 9
        default = make_assembler(load_config(None, overrides={"walk.rejoin_s": 0.0}, env={}))
        assert _absent_run_that_ends_a_walk(default, segmenter) == 5
    finally:
        parts.close()


def test_collect_builds_the_kiosks_gate():
    import inspect

    import edge.collect

    source = inspect.getsource(edge.collect.kiosk_walks)
    assert "make_assembler(cfg, input_height)" in source and "open_configured_source(cfg)" in source


def test_source_keys_reach_the_source():
    from edge.wiring import open_configured_source

    cfg = load_config(
        None,
        overrides={"source.uri": "sim://?seed=1&walks=1", "source.fps": 15.0, "source.color": True},
        env={},
    )
    source = open_configured_source(cfg)
    assert source.fps == 15.0 and source.images == frozenset({"depth", "color"})
    # the URI's own options win over the section
    cfg = load_config(
        None,
        overrides={"source.uri": "sim://?fps=10&color=0", "source.fps": 15.0, "source.color": True},
        env={},
    )
    source = open_configured_source(cfg)
    assert source.fps == 10.0 and source.images == frozenset({"depth"})
    cfg = load_config(
        None, overrides={"source.uri": "silhouettes:///nowhere", "source.fps": 12.0}, env={}
    )
    assert open_configured_source(cfg).fps == 12.0


def test_realsense_keys_reach_the_realsense_source():
    from edge.wiring import open_configured_source

    cfg = load_config(
        None,
        overrides={
            "source.uri": "realsense://",
            "source.width": 848,
            "source.height": 480,
            "source.fps": 15.0,
            "source.color": True,
            "source.realsense.decimation": 2,
            "source.realsense.spatial": False,
            "source.realsense.temporal": True,
            "source.realsense.hole_filling": False,
        },
        env={},
    )
    source = open_configured_source(cfg)
    assert (source.width, source.height, source.fps, source.color, source.decimation) == (
        848,
        480,
        15.0,
        True,
        2,
    )
    assert source.filters == ["decimation", "depth_to_disparity", "temporal", "disparity_to_depth"]


def test_health_keys_reach_the_kiosk():
    from edge.service import Kiosk, ServiceOptions

    cfg = load_config(None, overrides={"health.latency_window": 7}, env={})
    kiosk = Kiosk(cfg, options=ServiceOptions(install_signals=False))
    assert kiosk.health.latency_window == 7


def test_model_frames_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="model.frames was removed.*delete the key"):
        load_config(write(tmp_path, "[model]\nframes = 30\n"), env={})


def test_the_model_card_is_read_once(tmp_path, monkeypatch):
    import edge.screening.threshold
    import edge.wiring

    model = tmp_path / "model.onnx"
    (tmp_path / "card.json").write_text(json.dumps({"referral_threshold": 0.3}))
    reads = []
    real = edge.screening.threshold.read_card
    monkeypatch.setattr(edge.wiring, "read_card", lambda *a: reads.append(a) or real(*a))
    overrides = {"model.path": str(model), "state_dir": str(tmp_path / "state")}
    cfg = load_config(None, overrides=overrides, env={})
    assert not reads  # the configuration is data: loading it reads no card
    resolved = screening_threshold(cfg)
    effective_config(cfg, resolved)
    parts = build_components(cfg, runner=object(), threshold=resolved)
    parts.close()
    assert parts.threshold.value == 0.3 and len(reads) == 1
    cfg.screening.threshold = 0.7  # a changed key is honoured, not a stale answer
    assert screening_threshold(cfg).value == 0.7


def test_the_settings_model_reads_no_files():
    import ast

    import edge.settings

    tree = ast.parse(Path(edge.settings.__file__).read_text())
    file_access = {"open", "read_text", "read_bytes", "is_file", "exists", "stat"}
    calls = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    assert not file_access & set(calls)
    assert not hasattr(KioskConfig, "threshold")  # resolved once, by edge.wiring


def test_threshold_resolution_does_not_know_the_config_tree():
    import ast

    import edge.screening.threshold

    tree = ast.parse(Path(edge.screening.threshold.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(name and name.startswith(("edge.settings", "edge.config")) for name in imported)


def test_the_committed_json_schema_is_current():
    committed = (ROOT / "docs" / "kiosk-config.schema.json").read_text()
    assert committed == schema_text(), (
        "docs/kiosk-config.schema.json differs from the models in edge/settings.py: "
        "run `python -m edge config schema --output docs/kiosk-config.schema.json`"
    )


def test_the_config_md_key_table_is_current():
    text = (ROOT / "docs" / "CONFIG.md").read_text()
    table = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"
    assert table == key_table(), (
        "docs/CONFIG.md's key table differs from the models in edge/settings.py: replace it with the "
        "output of `python -m edge config schema --markdown`"
    )


def test_every_key_is_documented_in_its_field():
    rows = [line for line in key_table().splitlines()[2:]]
    missing = [
        row.split("|")[1].strip() for row in rows if not row.rstrip(" |").split("|")[-1].strip()
    ]
    assert not missing, f"keys without Field(description=...): {missing}"


def test_the_example_file_names_every_key():
    import sys

    tomllib = (
        pytest.importorskip("tomllib")
        if sys.version_info >= (3, 11)
        else pytest.importorskip("tomli")
    )
    data = tomllib.loads(EXAMPLE.read_text())

    def keys(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    documented = {row.split("`")[1] for row in key_table().splitlines()[2:]}
    assert set(keys(data)) <= documented


def test_short_coverage_above_min_coverage_is_refused_naming_both_keys(tmp_path):
    path = write(
        tmp_path, "[walk]\nmin_coverage = 0.3\n"
    )  # the old default, below short_coverage's 0.52
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    text = str(err.value)
    assert "walk.short_coverage = 0.52" in text and "walk.min_coverage = 0.3" in text
    assert str(path) in text
    with pytest.raises(ConfigError, match="walk.short_coverage = 0.9 .*walk.min_coverage = 0.85"):
        load_config(None, env={"GAITMIL_WALK__SHORT_COVERAGE": "0.9"})
    # lowering both together is fine, and equal values are allowed (the gate allows them)
    cfg = load_config(
        None, overrides={"walk.min_coverage": 0.4, "walk.short_coverage": 0.4}, env={}
    )
    assert cfg.walk.short_coverage == cfg.walk.min_coverage == 0.4


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("walk_axis", '"diagonal"', "'auto', 'depth' or 'lateral'"),
        ("multiple_people_share", "0", "greater than 0"),
        ("full_depth_travel_mm", "-1", "greater than 0"),
        ("min_coverage", "1.5", "less than or equal to 1"),
    ],
)
def test_bad_gate_values_name_the_key(tmp_path, key, value, allowed):
    path = write(tmp_path, f"[walk]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert f"walk.{key} = " in str(err.value) and allowed in str(err.value)


def test_segmentation_rules_reach_the_kiosks_segmenter():
    from edge.wiring import make_segmenter, open_configured_source

    cfg = load_config(
        None,
        overrides={
            "source.uri": "sim://?seed=0&walks=1",
            "segmentation.min_area": 900,
            "segmentation.flying_mm": 0,
            "segmentation.behind_mm": 700,
            "segmentation.stereo_shadow_left": False,
            "segmentation.close_px": 5,
        },
        env={},
    )
    segmenter = make_segmenter(cfg, open_configured_source(cfg))
    rules = segmenter.components.rules
    assert (
        rules.min_area,
        rules.flying_mm,
        rules.behind_mm,
        rules.stereo_shadow_left,
        rules.close_px,
    ) == (900, 0, 700, False, 5)
