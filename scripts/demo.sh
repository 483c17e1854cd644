#!/usr/bin/env bash
# The README's main-job command: the kiosk on embedded defaults (simulated
# camera, shipped demo model on ONNX Runtime, embedded MQTT broker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh demo
exec .venv/bin/python -m edge demo "$@"
