"""`python -m edge` (also installed as `gaitmil-edge`): run, demo, check, calibrate-site, subscribe, config check, outbox.

Exit codes (documented in docs/KIOSK.md; systemd restarts on anything but 0):
  0  done, or stopped cleanly by SIGTERM/SIGINT
  1  internal error, a camera that failed while running, or `check` found a problem
  2  bad command line
  3  bad configuration (the message names the key, the value and what is allowed)
  4  model problem (missing, corrupt or mismatched model or manifest)
  5  camera/source problem at start-up
  6  broker/outbox problem at start-up (the message says which: corrupt, read-only, disk full)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import (
    ConfigError,
    EdgeError,
    ModelError,
    PublishError,
    RunnerError,
    SegmentationError,
    SourceError,
)
from edge.publishing.topic_guard import add_topic_flags
from gaitcontract import HelpFormatter, add_version_flag

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

    from edge.settings import KioskConfig, MqttConfig
    from edge.types import Frame

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_MODEL = 4
EXIT_SOURCE = 5
EXIT_BROKER = 6

log = logging.getLogger("edge")


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    for kinds, code in (
        ((ConfigError,), EXIT_CONFIG),
        ((ModelError, RunnerError), EXIT_MODEL),
        ((SourceError, SegmentationError), EXIT_SOURCE),
        ((PublishError,), EXIT_BROKER),
    ):
        if isinstance(exc, kinds):
            return code
    return EXIT_FAILED


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """Command-line flags that override the config file (dotted keys)."""
    pairs = {
        "source.uri": getattr(args, "source", None),
        "model.path": getattr(args, "model", None),
        "model.runner": getattr(args, "runner", None),
        "mqtt.url": getattr(args, "broker", None),
    }
    return {key: value for key, value in pairs.items() if value is not None}


def _load(args: argparse.Namespace) -> KioskConfig:
    from edge.config import load_config

    return load_config(getattr(args, "config", None), _overrides(args))


def _setup_logging(cfg: KioskConfig, args: argparse.Namespace) -> None:
    from edge.logs import setup_logging

    level = getattr(args, "log_level", None) or cfg.logging.level
    json_lines = bool(getattr(args, "json_logs", False) or cfg.logging.json_lines)
    setup_logging(level, json_lines)


# -- commands ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components, screening_threshold

    cfg = _load(args)
    threshold = screening_threshold(cfg)  # the model card, read once: a broken one stops us here
    _setup_logging(cfg, args)
    if args.service:
        from edge.model_store.facts import refuse_simulated_model

        refuse_simulated_model(cfg)
    parts = build_components(cfg, threshold=threshold)
    return Kiosk(cfg, options=ServiceOptions(max_walks=args.max_walks), components=parts).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            walks=args.walks,
            broker=args.broker,
            seed=args.seed,
            model=args.model,
            realtime=args.realtime,
            scenario=args.scenario,
            topic_prefix=args.topic_prefix,
            allow_production_prefix=args.allow_production_prefix,
        )
    )


def cmd_config_check(args: argparse.Namespace) -> int:
    from edge.config import effective_config, load_config
    from edge.wiring import screening_threshold

    cfg = load_config(args.file)
    print(json.dumps(effective_config(cfg, screening_threshold(cfg), mask_secrets=True), indent=2))
    print(f"config OK: {args.file}", file=sys.stderr)
    return EXIT_OK


def cmd_config_schema(args: argparse.Namespace) -> int:
    from edge.config import key_table, schema_text

    text = key_table() if args.markdown else schema_text()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from edge.wiring import screening_threshold

    cfg = _load(args)
    screening_threshold(cfg)  # a broken model card fails the check at once, as it fails `run`
    if args.verbose:
        _setup_logging(cfg, args)
    results = run_checks(cfg, timeout=args.timeout)
    width = max(len(r.name) for r in results)
    for result in results:
        print(f"{result.name:<{width}}  {'OK  ' if result.ok else 'FAIL'}  {result.detail}")
        if not result.ok and result.fix:
            print(f"{'':<{width}}        fix: {result.fix}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_calibrate_site(args: argparse.Namespace) -> int:
    from edge.segmentation.site import learn_site
    from edge.sources import open_source
    from edge.sources.base import good_frames

    if args.seconds <= 0:
        raise SourceError(f"--seconds must be positive, got {args.seconds}")
    frames = []
    with open_source(args.source) as source:
        limit = max(1, int(round(args.seconds * source.fps)))
        deadline = (
            time.monotonic() + args.seconds + 10.0
        )  # a camera that stops sending ends the wait
        for frame in good_frames(source):  # an undecodable frame is skipped, not fatal
            frames.append(frame)
            if len(frames) >= limit or time.monotonic() > deadline:
                break
    site = learn_site(frames)
    path = site.save(args.out)
    print(
        f"site model {path}: {site.frames} frames, {site.shape[1]}x{site.shape[0]}, "
        f"{site.valid_share:.0%} of pixels with background depth, range gate {site.near_mm}-{site.far_mm} mm"
    )
    print(f'use it with: [segmentation] site_model = "{path}"')
    return EXIT_OK


# `subscribe` flags -> [mqtt] keys; a flag not given leaves the key at MqttConfig's default
_SUBSCRIBE_FLAGS = {
    "url": "--broker",
    "topic_prefix": "--topic-prefix",
    "protocol": "--protocol",
    "client_id": "--client-id",
    "username": "--username",
    "password_file": "--password-file",
    "tls": "--ca-file",
}


def subscriber_config(args: argparse.Namespace) -> MqttConfig:
    """The [mqtt] section (MqttConfig) the `subscribe` flags describe; ConfigError naming the flag."""
    from pydantic import ValidationError

    from edge.settings import MqttConfig

    given = {
        "url": args.broker,
        "topic_prefix": args.topic_prefix,
        "protocol": args.protocol,
        "client_id": args.client_id,
        "username": args.username,
        "password_file": args.password_file,
        "tls": {"ca_file": args.ca_file} if args.ca_file else None,
    }
    try:
        # a subscriber publishes nothing, so 3.1.1's silent loss of refused publishes does not apply;
        # a dashboard retries every few seconds, not every minute
        return MqttConfig(
            allow_protocol_311=True,
            reconnect_max_delay=5.0,
            **{key: value for key, value in given.items() if value is not None},
        )
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = (
                _SUBSCRIBE_FLAGS.get(str(err["loc"][0]), str(err["loc"][0]))
                if err["loc"]
                else "flags"
            )
            text = err["msg"].removeprefix("Value error, ")
            for (
                key,
                flag,
            ) in _SUBSCRIBE_FLAGS.items():  # the config's key names -> the flags given here
                text = text.replace(f"mqtt.{key}", flag)
            problems.append(f"{where}: {text}")
        raise ConfigError(f"subscribe: {'; '.join(problems)}") from None


def cmd_subscribe(args: argparse.Namespace) -> int:
    from edge.publishing.subscriber import ResultSubscriber

    config = subscriber_config(args)
    subscriber = ResultSubscriber(
        config,
        site=args.site,
        kiosk=args.kiosk,
        persistent=args.client_id is not None,
        out=sys.stdout,
        jsonl=args.out,
    )
    subscriber.start(wait=10.0)
    print(
        f"listening on {subscriber.result_topic} at {args.broker} (Ctrl-C to stop)", file=sys.stderr
    )
    try:
        while args.count is None or len(subscriber.results) < args.count:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.stop()
    print(
        f"{len(subscriber.results)} result(s), {subscriber.duplicates} duplicate(s) dropped",
        file=sys.stderr,
    )
    return EXIT_OK


# -- `check`: camera, model, broker -----------------------------------------------------------


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _check_camera(cfg: KioskConfig, timeout: float) -> CheckResult:
    from edge.sources import validate_frame
    from edge.wiring import open_configured_source

    fix = "check source.uri; for RealSense: USB 3 port and cable, `rs-enumerate-devices`; video: `v4l2-ctl --list-devices`"
    got: list[Frame] = []
    errors: list[BaseException] = []

    def read_one() -> None:
        try:
            with open_configured_source(cfg) as source:
                got.append(validate_frame(next(iter(source))))
        except (EdgeError, StopIteration, OSError) as exc:
            errors.append(exc)

    reader = threading.Thread(target=read_one, daemon=True)
    reader.start()
    reader.join(timeout)
    if errors:
        return CheckResult(
            "camera", False, f"{cfg.source.uri}: {errors[0] or 'no frame (source empty)'}", fix
        )
    if not got:
        return CheckResult(
            "camera", False, f"{cfg.source.uri}: no frame within {timeout:.0f} s", fix
        )
    frame = got[0]
    image = next(a for a in (frame.depth, frame.color, frame.silhouette) if a is not None)
    return CheckResult(
        "camera", True, f"{cfg.source.uri}: frame {image.shape[1]}x{image.shape[0]} {image.dtype}"
    )


def _check_model(cfg: KioskConfig) -> CheckResult:
    from edge.runners.registry import create_runner
    from edge.wiring import runner_options
    from gaitcontract.spec import INPUT_NAME

    try:
        with create_runner(
            cfg.model.runner, cfg.model.path, threads=cfg.model.threads, **runner_options(cfg)
        ) as runner:
            runner.infer({INPUT_NAME: np.zeros(runner.input_shape, np.float32)})
            ms = (runner.last_timing or {}).get("total_ms", 0.0)
            return CheckResult(
                "model",
                True,
                f"{cfg.model.path}: {runner.name} {runner.precision} {runner.model_id}, "
                f"input {list(runner.input_shape)}, one inference {ms:.1f} ms",
            )
    except EdgeError as exc:
        return CheckResult(
            "model", False, f"{cfg.model.path}: {exc}", "rebuild or re-copy the model named above"
        )


def _check_broker(cfg: KioskConfig, timeout: float) -> CheckResult:
    from edge.publishing.client import (
        build_client,
        describe_connect_error,
        is_auth_refusal,
        mqtt_endpoint,
    )

    fix = "is the broker running and reachable? check mqtt.url, mqtt.username/password_file and mqtt.tls"
    try:
        s = mqtt_endpoint(cfg.mqtt, f"{cfg.client_id}-check")
        client, connect = build_client(s)
    except EdgeError as exc:  # unreadable password file, unusable TLS files, paho missing
        return CheckResult("broker", False, f"{cfg.mqtt.url}: {exc}", fix)
    answer: list[ReasonCode] = []
    done = threading.Event()

    def on_connect(
        client: object,
        userdata: object,
        flags: object,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        answer.append(reason_code)  # list.append cannot raise: nothing escapes into paho's thread
        done.set()

    client.on_connect = on_connect
    try:
        # a blocking connect raises the socket/TLS error itself (wrong CA, wrong host name, refused)
        client.connect(**connect)
        client.loop_start()
        done.wait(timeout)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return CheckResult(
            "broker", False, f"{s.broker}: cannot connect: {describe_connect_error(exc, s)}", fix
        )
    finally:
        client.disconnect()
        client.loop_stop()
    user = cfg.mqtt.username or "(anonymous)"
    if not answer:
        return CheckResult("broker", False, f"{s.broker}: no answer within {timeout:.0f} s", fix)
    if answer[0].is_failure:
        if is_auth_refusal(answer[0]):
            fix = "check mqtt.username, mqtt.password_file and the broker's password file and ACL"
        return CheckResult("broker", False, f"{s.broker} refused user {user}: {answer[0]}", fix)
    return CheckResult(
        "broker", True, f"{s.broker}: connected as {user}" + (" over TLS" if s.tls else "")
    )


def _check_outbox(cfg: KioskConfig) -> CheckResult:
    from edge.outbox.store import Outbox

    try:
        with Outbox.from_config(cfg) as outbox:
            stats = outbox.stats()
    except EdgeError as exc:
        return CheckResult("outbox", False, str(exc), "make state_dir writable by the kiosk user")
    return CheckResult(
        "outbox",
        True,
        f"{cfg.outbox_path}: {stats['pending']} pending, {stats['parked']} parked, "
        f"{stats['used_fraction']:.0%} of budget",
    )


def run_checks(cfg: KioskConfig, timeout: float = 10.0) -> list[CheckResult]:
    """Camera, model, broker and outbox, each OK or FAIL with the fix."""
    return [
        _check_camera(cfg, timeout),
        _check_model(cfg),
        _check_broker(cfg, timeout),
        _check_outbox(cfg),
    ]


# -- parser -----------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 1, got {value} (leave it out for no limit)"
        )
    return value


def cmd_collect(args: argparse.Namespace) -> int:
    from edge.collect import main as collect_main

    return collect_main(args.collect_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge",
        description="GaitMIL screening kiosk",
        formatter_class=HelpFormatter,
        epilog="exit codes: 0 ok, 1 failed, 2 usage, 3 config, 4 model, 5 camera, 6 broker",
    )
    add_version_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    def kiosk_flags(p: argparse.ArgumentParser, config_required: bool = False) -> None:
        p.add_argument(
            "--config",
            required=config_required,
            help="kiosk TOML file (defaults apply without one)",
        )
        p.add_argument(
            "--source", help="camera URI, e.g. sim://?walks=5, realsense://, /dev/video0"
        )
        p.add_argument("--model", help="model file (ONNX, TensorRT engine or checkpoint)")
        p.add_argument("--runner", choices=("onnxruntime", "torch", "tensorrt"))
        p.add_argument("--broker", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
        p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
        p.add_argument("--json-logs", action="store_true", help="log JSON lines")

    p = sub.add_parser("run", formatter_class=HelpFormatter, help="run the kiosk loop")
    kiosk_flags(p)
    p.add_argument("--max-walks", type=_positive_int, help="stop after N results (N >= 1)")
    p.add_argument(
        "--service",
        action="store_true",
        help="started as the screening service (the systemd unit): refuse a model trained on "
        "simulated walks unless screening.allow_simulated_model = true",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "demo",
        formatter_class=HelpFormatter,
        help="simulated camera, demo model, embedded broker, console dashboard",
    )
    p.add_argument("--walks", type=int, default=5)
    p.add_argument("--broker", help="use this broker instead of the embedded one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="model to use instead of models/demo/")
    p.add_argument("--scenario", help="simulator scenario for every walk (e.g. two_people)")
    p.add_argument("--realtime", action="store_true", help="pace the simulated camera at 30 fps")
    add_topic_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "check",
        formatter_class=HelpFormatter,
        help="check camera, model and broker; print OK/FAIL with the fix",
    )
    kiosk_flags(p)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per check")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "calibrate-site",
        formatter_class=HelpFormatter,
        help="learn the empty corridor's background depth",
    )
    p.add_argument("--source", required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--out", required=True, help="site model file (.npz)")
    p.set_defaults(func=cmd_calibrate_site)

    p = sub.add_parser(
        "subscribe",
        formatter_class=HelpFormatter,
        help="reference dashboard client: print or record results",
    )
    p.add_argument("--broker", required=True)
    p.add_argument("--site", default="+")
    p.add_argument("--kiosk", default="+")
    p.add_argument("--out", help="append results to this JSON-lines file")
    p.add_argument("--topic-prefix", help="default: mqtt.topic_prefix's default")
    p.add_argument(
        "--protocol", choices=("5", "3.1.1"), help="default: mqtt.protocol's default (5)"
    )
    p.add_argument(
        "--client-id", help="fixed client id: a persistent session that keeps results while away"
    )
    p.add_argument("--username")
    p.add_argument("--password-file")
    p.add_argument("--ca-file")
    p.add_argument("--count", type=int, help="exit after N results")
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("config", formatter_class=HelpFormatter, help="configuration tools")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    c = config_sub.add_parser(
        "check",
        formatter_class=HelpFormatter,
        help="validate FILE and print the effective config, secrets masked",
    )
    c.add_argument("file")
    c.set_defaults(func=cmd_config_check)
    c = config_sub.add_parser(
        "schema",
        formatter_class=HelpFormatter,
        help="print the configuration's JSON Schema (for editors), or its key table",
    )
    c.add_argument(
        "--markdown", action="store_true", help="the Markdown key table of docs/CONFIG.md instead"
    )
    c.add_argument("--output", type=Path, help="write here instead of stdout")
    c.set_defaults(func=cmd_config_schema)

    # the tool lives in edge.collect (its own flags and --help); listed here so `python -m edge` names it
    p = sub.add_parser(
        "collect", add_help=False, help="training data through the kiosk's own camera path"
    )
    p.set_defaults(func=cmd_collect, collect_args=[])

    from edge.outbox.cli import add_parser as add_outbox_parser

    add_outbox_parser(sub)
    from edge.model_store.cli import add_parser as add_model_parser

    add_model_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "collect":  # its flags are edge.collect's own
        args.collect_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args))
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
