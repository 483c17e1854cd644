"""Engine decisions that need no GPU: versions, L4T, cache keys, profiles, manifest checks, rebuilds."""

from __future__ import annotations

import pytest

from export.engine_plan import (
    check_builder_options,
    compare_engine_manifest,
    decide_build,
    engine_facts,
    keyed_cache_path,
    legacy_fp16_allowed,
    parse_l4t,
    parse_version,
    profile_shapes,
    read_l4t,
    timing_cache_key,
)
from export.errors import EngineError

FACTS = engine_facts(
    tensorrt_version="10.3.0.30",
    gpu_name="Orin",
    compute_capability="8.7",
    sm_count=8,
    memory_gib=8,
    l4t="36.4.3",
    precision="fp16",
    onnx_sha256="a" * 64,
    input_shapes={"silhouettes": [1, 30, 64, 44]},
)


def _manifest(**changes):
    facts = FACTS | changes
    return {
        "precision": facts["precision"],
        "input_shapes": facts["input_shapes"],
        "source": {"onnx_sha256": facts["onnx_sha256"]},
        "extra": {"legacy_fp16": facts["legacy_fp16"]},
        "engine": {
            k: facts[k]
            for k in (
                "tensorrt_version",
                "gpu_name",
                "compute_capability",
                "sm_count",
                "memory_gib",
                "l4t",
            )
        },
    }


def test_versions_compare_as_numbers():
    assert parse_version("10.3.0.30") == (10, 3, 0, 30)
    assert parse_version("10.10.0") > parse_version("10.9.1")  # a string compare says otherwise
    with pytest.raises(EngineError):
        parse_version("unknown")


def test_legacy_fp16_only_on_10():
    assert legacy_fp16_allowed("10.3.0") and legacy_fp16_allowed("10.16.1")
    assert not legacy_fp16_allowed("11.4.1")
    check_builder_options("10.3.0", legacy_fp16=True)
    check_builder_options("11.4.1", legacy_fp16=False)
    with pytest.raises(EngineError, match="removed in 11.0"):
        check_builder_options("11.4.1", legacy_fp16=True)
    with pytest.raises(EngineError, match="too old"):
        check_builder_options("8.6.1", legacy_fp16=False)
    with pytest.raises(
        EngineError, match="INT8 Q/DQ"
    ):  # Q/DQ fixes the precision: the flag means nothing
        check_builder_options("10.3.0", legacy_fp16=True, precision="int8")
    check_builder_options("10.3.0", legacy_fp16=True, precision="fp32")


def test_l4t_parsing(tmp_path):
    text = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n"
    assert parse_l4t(text) == "36.4.3"
    assert parse_l4t("# R35 (release), REVISION: 5.0, GCID: 1") == "35.5.0"
    assert parse_l4t("garbage") is None
    assert read_l4t(tmp_path / "missing") is None
    (tmp_path / "nv_tegra_release").write_text(text)
    assert read_l4t(tmp_path / "nv_tegra_release") == "36.4.3"


def test_timing_cache_key_and_path(tmp_path):
    key = timing_cache_key("10.3.0.30", "Orin (nvgpu)", "8.7")
    assert key == "trt10.3.0.30-orin-nvgpu-sm8.7"
    assert timing_cache_key("10.13.0", "Orin (nvgpu)", "8.7") != key
    # Orin Nano, NX and AGX share name and compute capability; SM count, memory and L4T differ
    nano = timing_cache_key(
        "10.3.0.30", "Orin (nvgpu)", "8.7", sm_count=8, memory_gib=8, l4t="36.4.3"
    )
    agx = timing_cache_key(
        "10.3.0.30", "Orin (nvgpu)", "8.7", sm_count=16, memory_gib=64, l4t="36.4.3"
    )
    assert nano == "trt10.3.0.30-orin-nvgpu-sm8.7-8sm-8gib-l4t36.4.3" and agx != nano
    assert keyed_cache_path(tmp_path / "timing.cache", key) == tmp_path / f"timing.{key}.cache"
    assert keyed_cache_path(tmp_path, key) == tmp_path / f"timing.{key}.cache"


def test_profile_is_static():
    assert profile_shapes({"silhouettes": [4, 30, 64, 44]}) == {
        "silhouettes": ((4, 30, 64, 44),) * 3
    }
    with pytest.raises(EngineError, match="static shape"):
        profile_shapes({"silhouettes": ["batch", 30, 64, 44]})


def test_current_manifest_has_no_mismatch():
    assert compare_engine_manifest(_manifest(), FACTS) == []


@pytest.mark.parametrize(
    "key,value",
    [
        ("tensorrt_version", "10.13.0"),
        ("gpu_name", "Thor"),
        ("compute_capability", "11.0"),
        ("precision", "int8"),
        ("sm_count", 16),
        ("memory_gib", 64),
        ("legacy_fp16", True),
        ("onnx_sha256", "b" * 64),
        ("l4t", "38.2.0"),
        ("input_shapes", {"silhouettes": [1, 60, 64, 44]}),
    ],
)
def test_each_mismatch_is_named_with_how_to_rebuild(key, value):
    problems = compare_engine_manifest(_manifest(**{key: value}), FACTS, "m.onnx", "m.engine")
    assert len(problems) == 1 and problems[0].startswith(key)
    assert "python -m export engine --onnx m.onnx --out m.engine --force" in problems[0]


def test_build_number_does_not_matter_the_release_does():
    # the runner's rule (edge.runners.trt_plan.same_tensorrt_release): one rule, both sides
    assert compare_engine_manifest(_manifest(tensorrt_version="10.3.0.26"), FACTS) == []
    assert compare_engine_manifest(_manifest(tensorrt_version="10.3.1.30"), FACTS)


def test_decisions():
    assert decide_build(False, None, FACTS).action == "build"
    assert decide_build(True, _manifest(), FACTS, reuse_if_current=True).action == "reuse"
    stale = _manifest(tensorrt_version="10.2.0")
    assert decide_build(True, stale, FACTS, reuse_if_current=True).action == "build"
    refused = decide_build(True, stale, FACTS)
    assert refused.action == "refuse" and any("--force" in r for r in refused.reasons)
    assert decide_build(True, stale, FACTS, force=True).action == "build"
    assert decide_build(True, None, FACTS).action == "refuse"  # unknown engine: do not overwrite
    assert decide_build(True, None, FACTS, reuse_if_current=True).action == "build"
    assert decide_build(True, _manifest(), FACTS).action == "build"
    # a replaced or truncated engine beside a matching manifest is rebuilt, not reused
    damaged = decide_build(
        True, _manifest(), FACTS, reuse_if_current=True, integrity_problem="sha256 differs"
    )
    assert damaged.action == "build" and "replaced or truncated" in damaged.reasons[0]
