"""Make this interpreter look like a kiosk install, for the deployment tests.

Put this folder first on PYTHONPATH (and the repository after it): torch and onnx
(and the other [export] tools) become unimportable, as on a kiosk installed with
`systemd/install.sh`, and the fake TensorRT / cuda-python of tests/fakes stand in for
JetPack's. GAITMIL_FAKE_TENSORRT and GAITMIL_FAKE_CUDA_BINDINGS choose the variant.
"""

import os
import sys

BLOCKED = {"torch", "onnx", "onnxscript", "onnxconverter_common"}


class _KioskInstall:
    """A meta path finder that refuses the [export] extra's packages."""

    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {name!r} (a kiosk install has no {top})", name=name
            )
        return None


sys.meta_path.insert(0, _KioskInstall())

if os.environ.get("GAITMIL_FAKE_TENSORRT"):
    from tests.fakes.install import install_into

    bindings = os.environ.get("GAITMIL_FAKE_CUDA_BINDINGS", "12")
    install_into(
        sys.modules,
        tensorrt=os.environ["GAITMIL_FAKE_TENSORRT"],
        cuda_bindings=int(bindings) if bindings else None,
    )
