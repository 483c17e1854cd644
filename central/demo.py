"""`python -m central demo`: an embedded broker, the dashboard with demo users, and a simulated
kiosk as a separate process (`python -m edge run --source sim://...`): the two packages talk only
over MQTT, as in a school. The kiosk runs the shipped demo model, trained on simulated walks:
its results check the pipeline, they screen nobody."""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from central.errors import CentralError
from gaitcontract.topic_guard import TEST_PREFIX, production_refusal

SITE, KIOSK = "demo-school", "corridor-1"
# the demo's results are simulated: they travel under the test prefix (issue 23), never
# gaitmil/v1 unless asked for with --topic-prefix and --allow-production-prefix
DEMO_PREFIX = TEST_PREFIX


def check_demo_prefix(prefix: str, allow_production: bool) -> str:
    """`prefix` when the demo may publish under it; CentralError naming the flag otherwise."""
    why = production_refusal(prefix, allow_production, "central demo")
    if why is not None:
        raise CentralError(why)
    return prefix.strip().strip("/")


DEMO_USERS: tuple[tuple[str, str, list[str]], ...] = (
    ("demo-nurse", "nurse", [SITE]),
    ("demo-officer", "officer", []),
    ("demo-tech", "technician", []),
)


def find_demo_model() -> Path:
    """The kiosk's shipped FP32 demo model, looked up as a file (central imports nothing of edge)."""
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = root / "models" / "demo" / "model.onnx"
        if candidate.is_file():
            return candidate
    raise CentralError(
        "no models/demo/model.onnx here or beside the package: run the demo from the repository root"
    )


def kiosk_command(
    workdir: Path, broker_url: str, walks: int, prefix: str = DEMO_PREFIX
) -> list[str]:
    if importlib.util.find_spec("edge") is None:
        raise CentralError(
            "the demo's simulated kiosk is the edge package: pip install gaitmil-edge"
        )
    config = workdir / "kiosk.toml"
    config.write_text(
        f'state_dir = "{workdir / "kiosk-state"}"\n'
        f'[kiosk]\nsite_id = "{SITE}"\nkiosk_id = "{KIOSK}"\n'
        '[mqtt]\nprotocol = "3.1.1"\nallow_protocol_311 = true\n'  # the embedded amqtt broker speaks only 3.1.1 (no ACL to refuse a publish)
        f'topic_prefix = "{prefix}"\n'
        "[health]\ninterval_seconds = 10\n",
        encoding="utf-8",
    )
    return [
        sys.executable,
        "-m",
        "edge",
        "run",
        "--config",
        str(config),
        "--broker",
        broker_url,
        "--model",
        str(find_demo_model()),
        "--source",
        f"sim://?seed=0&walks={walks}&realtime=1",
    ]


def say(text: str) -> None:
    """One line to the operator's console (the demo's output is for a person, not a log)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_demo(args: Any) -> int:
    import uvicorn

    from central import users
    from central.db import open_store
    from central.demo_broker import DemoBroker
    from central.ingest import Ingest
    from central.mqtt_link import BrokerSettings
    from central.sites import add_site
    from central.web.app import WebSettings, create_app

    prefix = check_demo_prefix(
        getattr(args, "topic_prefix", DEMO_PREFIX), getattr(args, "allow_production_prefix", False)
    )
    workdir = Path(tempfile.mkdtemp(prefix="gaitmil-central-demo-"))
    broker = DemoBroker()
    ingest = kiosk = None
    engine = None
    log_file = None
    try:
        url = broker.start()
        engine, sessions = open_store(f"sqlite:///{workdir / 'central.db'}")
        password = secrets.token_urlsafe(9)
        with sessions() as db, db.begin():
            for name, role, schools in DEMO_USERS:
                users.add_user(db, name, password, role, schools)
            add_site(db, SITE, test=True, by="demo")
        ingest = Ingest(
            BrokerSettings(
                url=url, protocol="3.1.1", client_id="gaitmil-central-demo", topic_prefix=prefix
            ),
            sessions,
        )
        ingest.start(wait=15)
        log_file = open(workdir / "kiosk.log", "ab")  # noqa: SIM115 - closed below
        kiosk = subprocess.Popen(
            kiosk_command(workdir, url, args.walks, prefix), stdout=log_file, stderr=log_file
        )
        host, port = args.listen
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(sessions, ingest, WebSettings(topic_prefix=prefix), ingest=ingest),
                host=host,
                port=port,
                log_level="warning",
            )
        )
        say(f"gaitmil central demo: dashboard on http://{host}:{port}/")
        say(
            f"  log in as demo-nurse (school {SITE}), demo-officer or demo-tech, password: {password}"
        )
        say(
            f"  embedded broker {url}; simulated kiosk {SITE}/{KIOSK} (pid {kiosk.pid}, log {workdir / 'kiosk.log'})"
            f" walks {args.walks} times, about one walk every 8 s"
        )
        say(
            "  NOTE: the kiosk's demo model was trained on simulated walks: a pipeline check, not a screening "
            "tool."
        )
        say("  Ctrl-C stops everything.")
        if args.seconds:
            threading.Timer(args.seconds, lambda: setattr(server, "should_exit", True)).start()
        server.run()
        return 0
    finally:
        if kiosk is not None and kiosk.poll() is None:
            kiosk.send_signal(signal.SIGTERM)
            try:
                kiosk.wait(20)
            except subprocess.TimeoutExpired:
                kiosk.kill()
        if log_file is not None:
            log_file.close()
        if ingest is not None:
            ingest.stop()
        broker.stop()
        if engine is not None:
            engine.dispose()
        time.sleep(0.1)
        shutil.rmtree(workdir, ignore_errors=True)
