"""INT8 for Gait-MIL: calibration sets, explicit Q/DQ quantization and precision reports.

`python -m calibration --help`. Precision lives in the ONNX (Q/DQ nodes), so
the same INT8 model is built into a TensorRT engine on a Jetson and run by
ONNX Runtime on any CPU. Imports here stay light: onnxruntime's quantizer,
matplotlib and the simulator are loaded by the functions that need them.
"""
