"""A small TFLite -> ONNX converter for float convolutional segmenters (build time only).

It covers the operators of MediaPipe's selfie segmentation model and nothing more: float32
tensors with float16 weights (DEQUANTIZE), CONV_2D, DEPTHWISE_CONV_2D, MediaPipe's
`Convolution2DTransposeBias` custom op, AVERAGE_POOL_2D, ADD, MUL, RELU, RELU6,
HARD_SWISH, LOGISTIC and RESIZE_BILINEAR. Anything else is refused by name, so a new model
version cannot be converted wrongly in silence. The converted graph is NCHW inside with
the model's NHWC input and output kept, so callers feed it exactly as the TFLite model.

Why our own converter: tflite2onnx 0.4.1 refuses HARD_SWISH (and is unmaintained since
2022), and tf2onnx needs TensorFlow (hundreds of MB) just to read a 250 KB model.
Needs the `tflite` (flatbuffer schema) and `onnx` packages: pip install 'gaitmil-edge[export]'.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from export._deps import require
from export.errors import ExportError

OPSET = 17
_FUSED = {0: None, 1: "Relu", 3: "Relu6"}  # TFLite ActivationFunctionType


def _deps() -> tuple[Any, Any]:
    return require("tflite"), require("onnx")


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    const: np.ndarray | None


class _Graph:
    """Reads one TFLite subgraph and emits ONNX nodes."""

    def __init__(self, buf: bytes) -> None:
        self.tflite, self.onnx = _deps()
        tfl = self.tflite
        self.model = tfl.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise ExportError(f"expected one subgraph, found {self.model.SubgraphsLength()}")
        self.graph = self.model.Subgraphs(0)
        self.codes = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.tensors: dict[int, _Tensor] = {}
        self._serial = 0
        for i in range(self.graph.TensorsLength()):
            t = self.graph.Tensors(i)
            data = self._buffer(t)
            self.tensors[i] = _Tensor(f"t{i}", tuple(int(d) for d in t.ShapeAsNumpy()), data)

    def _buffer(self, t: Any) -> np.ndarray | None:
        buf = self.model.Buffers(t.Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        dtype = {
            self.tflite.TensorType.FLOAT32: np.float32,
            self.tflite.TensorType.FLOAT16: np.float16,
            self.tflite.TensorType.INT32: np.int32,
        }.get(t.Type())
        if dtype is None:
            raise ExportError(
                f"tensor {t.Name().decode()!r}: type {t.Type()} is not supported (float models only)"
            )
        return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(t.ShapeAsNumpy())

    def _fresh(self, stem: str) -> str:
        self._serial += 1
        return f"{stem}_{self._serial}"

    def _const(self, array: np.ndarray, stem: str = "c") -> str:
        name = self._fresh(stem)
        self.initializers.append(
            self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        )
        return name

    def _node(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self._fresh(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], **attrs))
        return out

    def _options(self, op: Any, cls: Any) -> Any:
        table = op.BuiltinOptions()
        options = cls()
        options.Init(table.Bytes, table.Pos)
        return options

    def _activation(self, value: str, fused: int, output: str) -> None:
        if fused not in _FUSED:
            raise ExportError(f"fused activation {fused} is not supported")
        kind = _FUSED[fused]
        if kind is None:
            self._node("Identity", [value], output)
        elif kind == "Relu":
            self._node("Relu", [value], output)
        else:
            self._node(
                "Clip", [value, self._const(np.float32(0)), self._const(np.float32(6))], output
            )

    @staticmethod
    def _same_pads(
        size: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        dilation: tuple[int, int] = (1, 1),
    ) -> list[int]:
        """TFLite SAME padding: the odd pixel goes at the end (bottom/right)."""
        begins, ends = [], []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            effective = (k - 1) * d + 1
            out = -(-n // s)
            total = max((out - 1) * s + effective - n, 0)
            begins.append(total // 2)
            ends.append(total - total // 2)
        return begins + ends

    def convert(self) -> Any:
        onnx = self.onnx
        g = self.graph
        (inp,) = g.InputsAsNumpy()
        (out,) = g.OutputsAsNumpy()
        nhwc_in = self.tensors[int(inp)]
        nhwc_out = self.tensors[int(out)]
        # NHWC input -> NCHW inside
        self.tensors[int(inp)] = _Tensor(
            self._node("Transpose", ["input"], perm=[0, 3, 1, 2]), nhwc_in.shape, None
        )
        for i in range(g.OperatorsLength()):
            self._op(g.Operators(i))
        final = self.tensors[int(out)].name
        self._node("Transpose", [final], "output", perm=[0, 2, 3, 1])
        graph = onnx.helper.make_graph(
            self.nodes,
            "person_segmenter",
            [
                onnx.helper.make_tensor_value_info(
                    "input", onnx.TensorProto.FLOAT, list(nhwc_in.shape)
                )
            ],
            [
                onnx.helper.make_tensor_value_info(
                    "output", onnx.TensorProto.FLOAT, list(nhwc_out.shape)
                )
            ],
            self.initializers,
        )
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
        model.ir_version = 8  # readable by the ONNX Runtime and TensorRT versions on JetPack 6
        onnx.checker.check_model(model)
        return model

    # -- operators --------------------------------------------------------------------------

    def _op(self, op: Any) -> None:
        tfl = self.tflite
        code_entry = self.model.OperatorCodes(op.OpcodeIndex())
        code = max(code_entry.BuiltinCode(), code_entry.DeprecatedBuiltinCode())
        name = (
            code_entry.CustomCode().decode()
            if code == tfl.BuiltinOperator.CUSTOM
            else self.codes.get(code, str(code))
        )
        ins = [int(j) for j in op.InputsAsNumpy()]
        (o,) = [int(j) for j in op.OutputsAsNumpy()]
        out_t = self.tensors[o]
        x = self.tensors[ins[0]]
        out_name = out_t.name
        if name == "DEQUANTIZE":
            if x.const is None:
                raise ExportError(
                    "DEQUANTIZE of a run-time tensor is not supported (float models only)"
                )
            self.tensors[o] = _Tensor(out_name, out_t.shape, x.const.astype(np.float32))
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self._conv(op, name, ins, out_name)
        elif name == "Convolution2DTransposeBias":
            self._transpose_conv(op, ins, out_name)
        elif name == "AVERAGE_POOL_2D":
            opts = self._options(op, tfl.Pool2DOptions)
            kernel, stride = (
                (opts.FilterHeight(), opts.FilterWidth()),
                (opts.StrideH(), opts.StrideW()),
            )
            h, w = x.shape[1:3]
            if kernel == (h, w) and opts.Padding() == tfl.Padding.VALID:
                value = self._node("GlobalAveragePool", [x.name])
            else:
                pads = (
                    self._same_pads((h, w), kernel, stride)
                    if opts.Padding() == tfl.Padding.SAME
                    else [0] * 4
                )
                # TFLite averages over the valid pixels only (count_include_pad = 0)
                value = self._node(
                    "AveragePool",
                    [x.name],
                    kernel_shape=list(kernel),
                    strides=list(stride),
                    pads=pads,
                )
            self._activation(value, opts.FusedActivationFunction(), out_name)
        elif name in ("ADD", "MUL"):
            opts = self._options(op, tfl.AddOptions if name == "ADD" else tfl.MulOptions)
            a, b = (self._operand(j) for j in ins)
            value = self._node("Add" if name == "ADD" else "Mul", [a, b])
            self._activation(value, opts.FusedActivationFunction(), out_name)
        elif name in ("RELU", "RELU6", "HARD_SWISH", "LOGISTIC"):
            onnx_op = {"RELU": "Relu", "HARD_SWISH": "HardSwish", "LOGISTIC": "Sigmoid"}.get(name)
            if onnx_op is None:
                self._activation(x.name, 3, out_name)
            else:
                self._node(onnx_op, [x.name], out_name)
        elif name == "RESIZE_BILINEAR":
            opts = self._options(op, tfl.ResizeBilinearOptions)
            mode = (
                "align_corners"
                if opts.AlignCorners()
                else ("half_pixel" if opts.HalfPixelCenters() else "asymmetric")
            )
            size = self.tensors[ins[1]].const
            sizes = np.array([x.shape[0], x.shape[3], int(size[0]), int(size[1])], np.int64)
            self._node(
                "Resize",
                [x.name, "", "", self._const(sizes)],
                out_name,
                mode="linear",
                coordinate_transformation_mode=mode,
            )
        else:
            raise ExportError(f"TFLite operator {name} is not supported by export.tflite_onnx")
        self.tensors[o] = _Tensor(
            out_name, out_t.shape, self.tensors[o].const if name == "DEQUANTIZE" else None
        )

    def _operand(self, index: int) -> str:
        t = self.tensors[index]
        if t.const is None:
            return t.name
        c = t.const.astype(np.float32)
        if c.ndim == 4:
            c = c.transpose(0, 3, 1, 2)
        elif c.ndim == 1:
            c = c.reshape(1, -1, 1, 1)  # per-channel constant against an NCHW activation
        return self._const(c)

    def _weights(self, index: int) -> np.ndarray:
        t = self.tensors[index]
        if t.const is None:
            raise ExportError(f"tensor {t.name}: weights must be constants")
        return t.const.astype(np.float32)

    def _conv(self, op: Any, name: str, ins: list[int], out_name: str) -> None:
        tfl = self.tflite
        x = self.tensors[ins[0]]
        w = self._weights(ins[1])
        depthwise = name == "DEPTHWISE_CONV_2D"
        opts = self._options(op, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
        if depthwise:
            # [1, KH, KW, C*M] -> [C*M, 1, KH, KW], one group per input channel
            weight = w.transpose(3, 0, 1, 2)
            group = int(x.shape[3])
        else:
            weight = w.transpose(0, 3, 1, 2)  # [O, KH, KW, I] -> [O, I, KH, KW]
            group = 1
        kernel = (int(w.shape[1]), int(w.shape[2]))
        stride = (opts.StrideH(), opts.StrideW())
        dilation = (opts.DilationHFactor(), opts.DilationWFactor())
        pads = (
            self._same_pads(x.shape[1:3], kernel, stride, dilation)
            if opts.Padding() == tfl.Padding.SAME
            else [0] * 4
        )
        inputs = [x.name, self._const(weight, "w")]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self._const(self._weights(ins[2]), "b"))
        value = self._node(
            "Conv",
            inputs,
            kernel_shape=list(kernel),
            strides=list(stride),
            dilations=list(dilation),
            pads=pads,
            group=group,
        )
        self._activation(value, opts.FusedActivationFunction(), out_name)

    def _transpose_conv(self, op: Any, ins: list[int], out_name: str) -> None:
        """MediaPipe's transposed convolution with bias; options are TfLiteTransposeConvParams
        (padding, stride_width, stride_height as int32)."""
        raw = op.CustomOptionsAsNumpy().tobytes()
        if len(raw) < 12:
            raise ExportError(f"Convolution2DTransposeBias: {len(raw)} option bytes, expected 12")
        padding, stride_w, stride_h = struct.unpack("<3i", raw[:12])
        x = self.tensors[ins[0]]
        w = self._weights(ins[1])  # [O, KH, KW, I]
        b = self._weights(ins[2])
        out_shape = self.tensors[int(op.OutputsAsNumpy()[0])].shape
        kernel = (int(w.shape[1]), int(w.shape[2]))
        stride = (stride_h, stride_w)
        pads_begin, pads_end = [], []
        for n, k, s, target in zip(x.shape[1:3], kernel, stride, out_shape[1:3]):
            total = max((n - 1) * s + k - int(target), 0)
            pads_begin.append(total // 2)
            pads_end.append(total - total // 2)
        if padding not in (1, 2):  # TfLitePadding: 1 = SAME, 2 = VALID
            raise ExportError(f"Convolution2DTransposeBias: unknown padding {padding}")
        self._node(
            "ConvTranspose",
            [x.name, self._const(w.transpose(3, 0, 1, 2), "w"), self._const(b, "b")],
            out_name,
            kernel_shape=list(kernel),
            strides=list(stride),
            pads=pads_begin + pads_end,
        )


def convert_tflite(data: bytes) -> Any:
    """The ONNX ModelProto of a float TFLite segmentation model (NHWC in and out, as TFLite)."""
    return _Graph(data).convert()
