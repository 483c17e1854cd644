"""Signature-faithful fakes of NVIDIA libraries that cannot run on CI machines (no GPU, no TensorRT).

Each fake keeps the real keyword names and return conventions of the calls this
project makes, so the glue around those calls executes on every CI run; see
tests/fakes/README.md for the sources of the API facts they encode.
"""
