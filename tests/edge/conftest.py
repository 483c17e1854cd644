"""Fixtures shared by the tests in tests/edge (the broker fixtures are in tests/conftest.py).

Plain helpers live beside them: kiosk_support.py (synthetic corridor camera, test configs,
running a kiosk in-process) and tls_support.py (certificates, TLS publisher settings).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.edge.kiosk_support import build_kiosk_model
from tests.edge.tls_support import make_pki, password_file


@pytest.fixture(scope="session")
def kiosk_model(tmp_path_factory) -> Path:
    """model.onnx + model.manifest.json + card.json of a tiny untrained Gait-MIL (T=16)."""
    return build_kiosk_model(tmp_path_factory.mktemp("kiosk_model"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, server and client certificates (and an unrelated CA) made with the openssl CLI."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(mosquitto_factory, pki, tmp_path):
    """A mosquitto broker that requires TLS with a client certificate and a password."""
    passwords = password_file(tmp_path / "passwd")
    broker = mosquitto_factory(
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate true\npassword_file {passwords}\nallow_anonymous false\n",
        name="tls-broker",
    )
    broker.start()
    return broker
