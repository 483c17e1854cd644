"""Packaging for gaitmil-edge.

The base install is what a kiosk needs to run on ONNX Runtime; everything
heavier (torch, TensorRT, librealsense) is an extra, imported lazily by the
component that needs it.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

# the one version source is gaitcontract/__init__.py (read as text: setup.py must not import the package)
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (Path(__file__).resolve().parent / "gaitcontract" / "__init__.py").read_text("utf-8"),
    re.M,
).group(1)

TORCH = "torch==2.13.0"

# cuda-python's major must match the CUDA major of the machine: 13.x bindings need a CUDA 13
# driver, so on JetPack 6 (CUDA 12.6) an unbounded pin picks 13.x and the first CUDA call fails.
CUDA12 = ["cuda-python>=12.6,<13"]  # JetPack 6.x, CUDA 12 desktops
CUDA13 = ["cuda-python>=13,<14"]  # JetPack 7.x, CUDA 13 desktops

BASE = [
    "numpy>=1.24",
    # JetPack ships OpenCV 4; 5.x changed APIs the kiosk relies on.
    "opencv-python-headless>=4.8,<5",
    "onnxruntime>=1.18",
    "paho-mqtt>=2.1,<3",
    "pydantic>=2.6,<3",
    "tomli>=2.0; python_version < '3.11'",
    "psutil>=5.9",
    # Ed25519 signatures of model bundles (gaitcontract.bundle): never hand-written crypto
    "cryptography>=42",
]

EXTRAS = {
    "train": [TORCH, "tqdm>=4.66", "matplotlib>=3.8"],
    # tflite reads MediaPipe's .tflite when export.person_model rebuilds the person segmenter;
    # ai-edge-litert runs the original to check the conversion (build time only)
    "export": [
        TORCH,
        "onnx>=1.16",
        "onnxscript>=0.2",
        "onnxconverter-common>=1.14",
        "tflite>=2.18",
        "ai-edge-litert>=1.4",
    ],
    "realsense": ["pyrealsense2>=2.55"],
    # On a Jetson TensorRT comes from JetPack (apt python3-libnvinfer): install only the CUDA extra.
    "cuda12": CUDA12,
    "cuda13": CUDA13,
    # Elsewhere the TensorRT wheels name their CUDA major too.
    "tensorrt-cu12": ["tensorrt-cu12>=10.3,<12", *CUDA12],
    "tensorrt-cu13": ["tensorrt-cu13>=10.13,<12", *CUDA13],
    "pycuda": ["pycuda>=2024.1"],
    "demo": ["amqtt>=0.11", "jsonschema>=4.20"],
    # the central side (results store, dashboard); it shares only the MQTT contract with the kiosk
    "central": [
        "sqlalchemy>=2.0,<3",
        "alembic>=1.13",
        "psycopg[binary]>=3.1",
        "starlette>=0.37",
        "jinja2>=3.1",
        "python-multipart>=0.0.9",
        "uvicorn>=0.29",
        "argon2-cffi>=23.1",
        "jsonschema>=4.20",
        "prometheus-client>=0.20",
        "paho-mqtt>=2.1,<3",
        # QR codes on the class's code cards: pure Python, SVG out, no image library
        "segno>=1.6",
        # letters to parents: gettext catalogues (.po compiled in memory) and the pybabel tools
        "Babel>=2.14",
    ],
}
EXTRAS["dev"] = sorted(
    set(
        EXTRAS["train"]
        + EXTRAS["export"]
        + EXTRAS["realsense"]
        + EXTRAS["demo"]
        + EXTRAS["central"]
        + ["selenium>=4.20", "httpx>=0.27"]
        + [
            "pytest>=8",
            "hypothesis>=6.100",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "mypy==2.4.1",
            "jsonschema>=4.20",
            "scipy>=1.11",
        ]
    )
)
EXTRAS["all"] = sorted(set(EXTRAS["dev"] + EXTRAS["tensorrt-cu12"]))

setup(
    name="gaitmil-edge",
    version=VERSION,
    description="Edge inference for gait-based scoliosis screening kiosks (Gait-MIL)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=[
            "gaitcontract*",
            "gaitmil*",
            "gaitsim*",
            "export*",
            "calibration*",
            "edge*",
            "benchmarks*",
            "central*",
            "demobroker*",
        ]
    ),
    package_data={
        "export": ["data/*.txt", "data/*.json"],
        "gaitcontract": ["schemas/*.json"],
        "edge": ["data/*.toml", "data/person/*"],
        "benchmarks": ["schemas/*.json"],
        "central": [
            "migrations/*.py",
            "migrations/*.mako",
            "migrations/versions/*.py",
            "web/templates/*.html",
            "web/static/*",
            "locale/*.pot",
            "locale/*/LC_MESSAGES/*.po",
            "babel.cfg",
        ],
    },
    include_package_data=True,
    install_requires=BASE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["gaitmil-edge=edge.cli:main"]},
)
