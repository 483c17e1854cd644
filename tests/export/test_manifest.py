"""gaitcontract.manifest: schema, round trip, artifact verification."""

from __future__ import annotations

import json

import pytest

from gaitcontract.manifest import (
    FORMAT,
    Manifest,
    ManifestError,
    find_manifest,
    manifest_path_for,
    read_manifest,
    sha256_file,
    verify_artifact,
    write_manifest,
)


def _manifest(tmp_path, payload: bytes = b"weights") -> Manifest:
    model = tmp_path / "model.onnx"
    model.write_bytes(payload)
    return Manifest(
        model_id="gaitmil-tiny-abc",
        kind="onnx",
        precision="fp32",
        files={"model.onnx": sha256_file(model)},
        input_shapes={"silhouettes": [1, 30, 64, 44]},
        opset=17,
    )


def test_round_trip_and_verify(tmp_path):
    manifest = _manifest(tmp_path)
    path = write_manifest(manifest_path_for(tmp_path / "model.onnx"), manifest)
    assert path.name == "model.manifest.json"
    again = read_manifest(path)
    assert again == manifest
    assert json.loads(path.read_text())["format"] == FORMAT
    assert verify_artifact(tmp_path / "model.onnx") == manifest


def test_names_per_model():
    assert manifest_path_for("d/model.fp16.onnx").name == "model.fp16.manifest.json"
    assert manifest_path_for("d/model.int8-cpu.onnx").name == "model.int8-cpu.manifest.json"
    assert manifest_path_for("d/model.engine").name == "model.engine.manifest.json"


def test_folder_manifest_is_found(tmp_path):
    manifest = _manifest(tmp_path)
    write_manifest(tmp_path / "manifest.json", manifest)
    assert find_manifest(tmp_path / "model.onnx") == tmp_path / "manifest.json"
    assert verify_artifact(tmp_path / "model.onnx").model_id == "gaitmil-tiny-abc"


def test_tampered_model_is_refused_with_fix(tmp_path):
    write_manifest(manifest_path_for(tmp_path / "model.onnx"), _manifest(tmp_path))
    (tmp_path / "model.onnx").write_bytes(b"weightz")
    with pytest.raises(ManifestError, match="changed after its manifest") as info:
        verify_artifact(tmp_path / "model.onnx")
    assert "python -m export" in str(info.value)


def test_missing_manifest_and_unlisted_model(tmp_path):
    _manifest(tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        verify_artifact(tmp_path / "model.onnx")
    other = tmp_path / "other.onnx"
    other.write_bytes(b"x")
    write_manifest(tmp_path / "other.manifest.json", _manifest(tmp_path))
    with pytest.raises(ManifestError, match="does not describe other.onnx"):
        verify_artifact(other)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something/2"}, "format"),
        ({"precision": "fp8"}, "precision"),
        ({"kind": "tflite"}, "kind"),
        ({"precision": "int8"}, "target"),
        ({"files": {}}, "files"),
    ],
)
def test_bad_manifests_are_refused(tmp_path, change, message):
    data = _manifest(tmp_path).to_dict() | change
    path = tmp_path / "model.manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_not_json(tmp_path):
    path = tmp_path / "model.manifest.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        read_manifest(path)
