"""A fake `tensorrt` module (10.3 and 11.x variants) that runs ONNX models through ONNX Runtime.

What it keeps from the real Python bindings (python/src/infer/pyCore.cpp and
python/src/parsers/pyOnnx.cpp of NVIDIA/TensorRT, release/10.3 and release/11.x):

- keyword names: `Builder(logger)`, `create_network(flags=0)`, `OnnxParser(network, logger)`,
  `parse(model, path=None)`, `get_error(index)`, `set_memory_pool_limit(pool, pool_size)`,
  `set_flag(flag)` / `clear_flag(flag)` / `get_flag(flag)`, `add_optimization_profile(profile)`,
  `set_shape(input, min, opt, max)`, `create_timing_cache(serialized_timing_cache)`,
  `set_timing_cache(cache, ignore_mismatch)`, `build_serialized_network(network, config)`,
  `Runtime(logger)`, `deserialize_cuda_engine(serialized_engine)`, `get_tensor_name(index)`,
  `get_tensor_mode(name)`, `set_input_shape(name, shape)`, `set_tensor_address(name, memory)`,
  `execute_async_v3(stream_handle)`;
- return conventions: `parse`, `set_timing_cache`, `set_input_shape`, `set_tensor_address` and
  `execute_async_v3` return bools; `get_timing_cache()` is None when no cache is set;
  `build_serialized_network` and `deserialize_cuda_engine` return None on failure;
  IHostMemory supports the buffer protocol (`bytes(host_memory)`);
- version-dependent enums: 10.3 has BuilderFlag.FP16/INT8/BF16 and NetworkDefinitionCreationFlag
  EXPLICIT_BATCH=0, STRONGLY_TYPED=1; 11.x has no precision flags and STRONGLY_TYPED=0
  (deprecated, always on). TF32 exists in both and is on by default in a new builder config.

What a real GPU would refuse, it refuses: `execute_async_v3` returns False unless every I/O
tensor has an address inside a device allocation of the engine's device, and an engine
deserializes only on the TensorRT version and GPU that built it. Switchable failures:
`options.reject_timing_cache`, `options.fail_build`.
"""

from __future__ import annotations

import base64
import ctypes
import enum
import json
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.fakes.cuda_fake import CudaWorld, _spec

ENGINE_MAGIC = b"FAKETRT\x00"
CACHE_MAGIC = b"FAKETC\x00"
ORT_TYPES = {
    "tensor(float)": "FLOAT",
    "tensor(float16)": "HALF",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(bool)": "BOOL",
}
NP_OF = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "BOOL": np.bool_,
}


@dataclass
class FakeOptions:
    reject_timing_cache: bool = (
        False  # set_timing_cache refuses a loaded cache, as one from other device properties
    )
    fail_build: bool = False  # build_serialized_network returns None
    builds: list[dict[str, Any]] = field(default_factory=list)  # what each build was asked for


class IHostMemory(bytes):
    """Serialized engine / timing cache: a buffer (here: bytes) with nbytes."""

    @property
    def nbytes(self) -> int:
        return len(self)


class Dims(tuple):
    pass


def tensorrt_module(
    world: CudaWorld, version: str = "10.3.0.30"
) -> tuple[types.ModuleType, FakeOptions]:
    """A fresh `tensorrt` module for `version` bound to the fake GPUs in `world`."""
    major = int(version.split(".")[0])
    options = FakeOptions()
    trt = _spec(types.ModuleType("tensorrt"))
    trt.__version__ = version

    if major >= 11:
        BuilderFlag = enum.IntEnum(
            "BuilderFlag",
            {
                "DEBUG": 2,
                "GPU_FALLBACK": 3,
                "REFIT": 4,
                "DISABLE_TIMING_CACHE": 5,
                "TF32": 6,
                "SPARSE_WEIGHTS": 7,
            },
        )
        NetworkDefinitionCreationFlag = enum.IntEnum(
            "NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 0}
        )
    else:
        BuilderFlag = enum.IntEnum(
            "BuilderFlag",
            {
                "FP16": 0,
                "INT8": 1,
                "DEBUG": 2,
                "GPU_FALLBACK": 3,
                "REFIT": 4,
                "DISABLE_TIMING_CACHE": 5,
                "TF32": 6,
                "SPARSE_WEIGHTS": 7,
                "BF16": 17,
            },
        )
        NetworkDefinitionCreationFlag = enum.IntEnum(
            "NetworkDefinitionCreationFlag", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
        )
    MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    DataType = enum.IntEnum(
        "DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "INT64": 8}
    )

    class Logger:
        Severity = enum.IntEnum(
            "Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}
        )
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = list(Severity)

        def __init__(self, min_severity=None) -> None:
            self.min_severity = Logger.WARNING if min_severity is None else min_severity

        def log(self, severity, msg: str) -> None:
            if severity <= self.min_severity:
                print(f"[TRT] [{Logger.Severity(severity).name[0]}] {msg}", file=sys.stderr)

    class ITensor:
        def __init__(self, name: str, shape: list[Any], dtype: Any) -> None:
            self.name, self.shape, self.dtype = name, Dims(shape), dtype

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            strongly = 1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            self.strongly_typed = major >= 11 or bool(flags & strongly)
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._onnx: bytes | None = None

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        @property
        def num_outputs(self) -> int:
            return len(self._outputs)

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

    class ParserError:
        def __init__(self, desc: str) -> None:
            self._desc = desc

        def code(self) -> int:
            return 1

        def desc(self) -> str:
            return self._desc

        def node(self) -> int:
            return -1

        def node_name(self) -> str:
            return ""

        def node_operator(self) -> str:
            return ""

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            self.network, self.logger, self._errors = network, logger, []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def parse(self, model, path=None) -> bool:
            import onnxruntime as ort

            data = bytes(model)
            try:
                session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - a parser failure is a False return
                self._errors.append(
                    ParserError(f"failed to parse ONNX model: {str(exc).splitlines()[0]}")
                )
                return False
            net = self.network
            net._onnx = data
            net._inputs = [
                ITensor(i.name, i.shape, DataType[ORT_TYPES[i.type]]) for i in session.get_inputs()
            ]
            net._outputs = [
                ITensor(o.name, o.shape, DataType[ORT_TYPES[o.type]]) for o in session.get_outputs()
            ]
            return True

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002 - the real keyword names
            if not (len(min) == len(opt) == len(max)):
                raise RuntimeError("Shape provided for min is inconsistent with other shapes.")
            self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class ITimingCache:
        def __init__(self, fingerprint: str, entries: int = 0, loaded: bool = False) -> None:
            self.fingerprint, self.entries, self.loaded = fingerprint, entries, loaded

        def serialize(self) -> IHostMemory:
            header = json.dumps(
                {"version": version, "device": self.fingerprint, "entries": self.entries}
            )
            return IHostMemory(CACHE_MAGIC + header.encode())

    def fingerprint() -> str:
        return f"{version}|{world.gpus[world.current_device()].fingerprint}"

    class IBuilderConfig:
        def __init__(self) -> None:
            self._flags = {BuilderFlag.TF32}  # TF32 is enabled by default
            self._pools: dict[Any, int] = {}
            self._profiles: list[IOptimizationProfile] = []
            self._cache: ITimingCache | None = None

        def set_memory_pool_limit(self, pool, pool_size: int) -> None:
            self._pools[MemoryPoolType(pool)] = int(pool_size)

        def set_flag(self, flag) -> None:
            self._flags.add(BuilderFlag(flag))

        def clear_flag(self, flag) -> None:
            self._flags.discard(BuilderFlag(flag))

        def get_flag(self, flag) -> bool:
            return BuilderFlag(flag) in self._flags

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, serialized_timing_cache) -> ITimingCache | None:
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache(fingerprint())
            if not data.startswith(CACHE_MAGIC):
                return None  # not a timing cache
            header = json.loads(data[len(CACHE_MAGIC) :])
            return ITimingCache(header["device"], header["entries"], loaded=True)

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            foreign = cache.fingerprint != fingerprint() or (
                options.reject_timing_cache and cache.loaded
            )
            if foreign and not ignore_mismatch:
                return False
            self._cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._cache

    class Builder:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger
            self.platform_has_tf32 = True

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            known = 0
            for member in NetworkDefinitionCreationFlag:
                known |= 1 << int(member)
            if flags & ~known:
                raise TypeError(f"create_network: unknown flag bits {flags:#x}")
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
            flags = sorted(f.name for f in config._flags)
            options.builds.append(
                {
                    "flags": flags,
                    "strongly_typed": network.strongly_typed,
                    "device": world.current_device(),
                }
            )
            if options.fail_build or network._onnx is None:
                self.logger.log(Logger.ERROR, "build failed")
                return None
            if config._cache is not None:
                config._cache.entries += 1
            header = {
                "version": version,
                "device": world.gpus[world.current_device()].fingerprint,
                "flags": flags,
                "inputs": {t.name: list(t.shape) for t in network._inputs},
            }
            blob = (
                ENGINE_MAGIC + json.dumps(header).encode() + b"\n" + base64.b64encode(network._onnx)
            )
            return IHostMemory(blob)

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine, self._addresses = engine, {}

        def set_input_shape(self, name: str, shape) -> bool:
            tensor = self.engine._tensors.get(name)
            return bool(
                tensor
                and tensor["mode"] == TensorIOMode.INPUT
                and tuple(shape) == tuple(tensor["shape"])
            )

        def set_tensor_address(self, name: str, memory: int) -> bool:
            if name not in self.engine._tensors:
                return False
            self._addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            engine = self.engine
            if world.streams.get(int(stream_handle)) != engine.device:
                return False  # no such stream, or a stream on another device
            buffers = {}
            for name, tensor in engine._tensors.items():
                nbytes = int(np.prod(tensor["shape"])) * np.dtype(NP_OF[tensor["dtype"]]).itemsize
                address = self._addresses.get(name)
                allocation = None if address is None else world.find(address, nbytes, "device")
                if allocation is None or allocation.device != engine.device:
                    return False  # TensorRT needs a device address for every I/O tensor
                buffers[name] = (address, nbytes)
            feed = {}
            for name, tensor in engine._tensors.items():
                if tensor["mode"] == TensorIOMode.INPUT:
                    address, nbytes = buffers[name]
                    raw = ctypes.string_at(address, nbytes)
                    feed[name] = np.frombuffer(raw, NP_OF[tensor["dtype"]]).reshape(tensor["shape"])
            outputs = [n for n, t in engine._tensors.items() if t["mode"] == TensorIOMode.OUTPUT]
            for name, value in zip(outputs, engine._session.run(outputs, feed)):
                value = np.ascontiguousarray(value, NP_OF[engine._tensors[name]["dtype"]])
                ctypes.memmove(buffers[name][0], value.ctypes.data, value.nbytes)
            return True

    class ICudaEngine:
        def __init__(self, onnx: bytes, device: int) -> None:
            import onnxruntime as ort

            self.device = device
            self._session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
            self._tensors: dict[str, dict[str, Any]] = {}
            for mode, values in (
                (TensorIOMode.INPUT, self._session.get_inputs()),
                (TensorIOMode.OUTPUT, self._session.get_outputs()),
            ):
                for value in values:
                    self._tensors[value.name] = {
                        "mode": mode,
                        "shape": list(value.shape),
                        "dtype": ORT_TYPES[value.type],
                    }

        @property
        def num_io_tensors(self) -> int:
            return len(self._tensors)

        def get_tensor_name(self, index: int) -> str:
            return list(self._tensors)[index]

        def get_tensor_mode(self, name: str):
            return self._tensors[name]["mode"] if name in self._tensors else TensorIOMode.NONE

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self._tensors[name]["shape"])

        def get_tensor_dtype(self, name: str):
            return DataType[self._tensors[name]["dtype"]]

        def create_execution_context(self, strategy=None) -> IExecutionContext:
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine) -> ICudaEngine | None:
            data = bytes(serialized_engine)
            try:
                if not data.startswith(ENGINE_MAGIC):
                    raise ValueError("not an engine")
                header_line, body = data[len(ENGINE_MAGIC) :].split(b"\n", 1)
                header = json.loads(header_line)
                onnx = base64.b64decode(body, validate=True)
            except ValueError:
                self.logger.log(
                    Logger.ERROR, "IRuntime::deserializeCudaEngine: invalid engine data"
                )
                return None
            device = world.current_device()
            if header["version"] != version or header["device"] != world.gpus[device].fingerprint:
                self.logger.log(
                    Logger.ERROR, "the engine plan file is not compatible with this version/device"
                )
                return None
            return ICudaEngine(onnx, device)

    for name, value in dict(locals()).items():
        if name[0].isupper():  # the classes and enums; tensorrt exposes them all at top level
            setattr(trt, name, value)
    return trt, options
