"""Checkpoint to ONNX, FP16 ONNX, TensorRT engines, manifests, parity checks and the op audit.

Subcommands live in `export.__main__` (`python -m export --help`). Importing
this package imports nothing heavy: torch, onnx, onnxruntime and tensorrt are
loaded by the functions that need them.
"""
