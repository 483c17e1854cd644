"""Helpers for the TLS tests (test_mqtt_tls.py, test_faults_tls.py); the `pki` and `tls_broker`
fixtures that use them are in conftest.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edge.publishing.client import PublisherSettings
from tests.edge.mqtt_support import publisher_settings_for


def run(*args: str, cwd: Path) -> None:
    subprocess.run(list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the kiosk (EC P-256, 1 day),
    plus an unrelated second CA (other.crt), all written into `d`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed: run scripts/system-deps.sh")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        openssl,
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=gaitmil test CA",
        cwd=d,
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "kiosk-a")):
        run(
            openssl,
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={cn}",
            cwd=d,
        )
        run(
            openssl,
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    # a second, unrelated CA: a broker certificate it did not sign must be refused
    run(
        openssl,
        "req",
        "-x509",
        *ec,
        "-keyout",
        "other.key",
        "-out",
        "other.crt",
        "-days",
        "1",
        "-subj",
        "/CN=other",
        cwd=d,
    )
    return d


def password_file(path: Path) -> Path:
    """A mosquitto password file with the kiosk ('correct horse') and the dashboard ('dash pass')."""
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.fail("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    subprocess.run(
        [passwd, "-b", "-c", str(path), "kiosk-a", "correct horse"], check=True, timeout=30
    )
    subprocess.run([passwd, "-b", str(path), "dashboard", "dash pass"], check=True, timeout=30)
    return path


def kiosk_settings(broker, pki: Path, password: str, **kw) -> PublisherSettings:
    """kiosk-a on the TLS broker with its client certificate; `kw` replaces any [mqtt] key (tls=False: no TLS)."""
    base = dict(
        host="127.0.0.1",
        kiosk_id="kiosk-a",
        client_id="kiosk-a",
        username="kiosk-a",
        password=password,
        tls=True,
        ca_file=pki / "ca.crt",
        cert_file=pki / "client.crt",
        key_file=pki / "client.key",
    )
    base.update(kw)
    return publisher_settings_for(broker, **base)
