#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the tests need, when they are missing:
# mosquitto (a real broker for the MQTT tests), libusb-1.0-0 (pyrealsense2),
# systemd (systemd-analyze verify on the units), python3-venv, opencv-doc (OpenCV's sample
# pedestrian video vtest.avi: the real-footage tests of the colour path read it from there),
# postgresql, chromium and chromium-driver (central's store and browser tests).
set -euo pipefail
missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || missing+=(libusb-1.0-0)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || missing+=(opencv-doc)
# central's tests: a real PostgreSQL server (started per test session by tests/central/postgres.py)
# and a real headless browser (Selenium drives Debian's chromium through chromium-driver)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# npm fetches axe-core (the accessibility checks injected into that browser; scripts/axe-core.sh)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$(dirname "$0")/axe-core.sh"
