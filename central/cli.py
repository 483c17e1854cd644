"""`python -m central serve|user|model|site|purge|demo|migrate`: the central side's command line."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

from central import cli_records
from central.db import DEFAULT_URL
from central.errors import CentralError
from central.plausibility import DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_SKEW_S
from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.topic_guard import TEST_PREFIX
from gaitcontract.topics import DEFAULT_PREFIX

log = logging.getLogger("central")


LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
DATABASE_HELP = "sqlite:///FILE or postgresql://USER@HOST/DB"


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


def _broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker", default="mqtt://127.0.0.1:1883", help="mqtt://HOST:PORT or mqtts://HOST:PORT"
    )
    p.add_argument("--mqtt-protocol", default="5", choices=["5", "3.1.1"], help="MQTT version")
    p.add_argument(
        "--client-id",
        default="gaitmil-central",
        help="fixed: the broker keeps this session's queue",
    )
    p.add_argument(
        "--share-group",
        default=None,
        help="MQTT 5 shared subscription group for several ingest workers",
    )
    p.add_argument("--topic-prefix", default=DEFAULT_PREFIX, help="the kiosks' mqtt.topic_prefix")
    p.add_argument("--mqtt-user", default=None, help="broker user name")
    p.add_argument(
        "--mqtt-password-file", type=Path, default=None, help="first line is the broker password"
    )
    p.add_argument(
        "--ca-file", type=Path, default=None, help="CA certificate of an mqtts:// broker"
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m central", description=__doc__, formatter_class=HelpFormatter
    )
    add_version_flag(ap)
    ap.add_argument(
        "--log-level",
        type=str.upper,
        default=os.environ.get("CENTRAL_LOG_LEVEL", "INFO").upper(),
        choices=LOG_LEVELS,
        help="log level, from CENTRAL_LOG_LEVEL when set",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="ingest MQTT into the database and serve the dashboard",
        formatter_class=HelpFormatter,
    )
    _broker_args(serve)
    serve.add_argument("--database", default=DEFAULT_URL, help=DATABASE_HELP)
    serve.add_argument(
        "--listen", type=_listen, default="127.0.0.1:8080", help="HOST:PORT of the dashboard"
    )
    serve.add_argument(
        "--no-web", action="store_true", help="ingest only (extra workers of a district)"
    )
    serve.add_argument(
        "--no-ingest", action="store_true", help="dashboard only (a district's web front)"
    )
    serve.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)"
    )
    serve.add_argument(
        "--max-skew-s",
        type=float,
        default=DEFAULT_MAX_SKEW_S,
        help="flag results whose time is more than this far ahead of their receipt",
    )
    serve.add_argument(
        "--max-age-days",
        type=float,
        default=DEFAULT_MAX_AGE_DAYS,
        help="flag results older than this on receipt (the kiosks' [outbox] expire_days)",
    )
    serve.add_argument(
        "--accept-unknown-sites",
        action="store_true",
        help="store results of sites not added with `site add` (default: quarantine them)",
    )
    serve.add_argument(
        "--retention-days",
        type=float,
        default=None,
        help="delete results received more than this many days ago, at start and daily",
    )
    user = sub.add_parser(
        "user", help="add, list or remove dashboard users", formatter_class=HelpFormatter
    )
    user.add_argument("--database", default=DEFAULT_URL, help=DATABASE_HELP)
    usub = user.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="add a user", formatter_class=HelpFormatter)
    add.add_argument("username", help="the login name")
    add.add_argument(
        "--role",
        required=True,
        choices=["nurse", "officer", "technician"],
        help="what the user may see and do",
    )
    add.add_argument(
        "--school", action="append", default=[], help="a nurse's school (site id); repeatable"
    )
    add.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help="first line is the password (else prompted)",
    )
    usub.add_parser("list", help="list the users", formatter_class=HelpFormatter)
    rm = usub.add_parser("remove", help="remove a user", formatter_class=HelpFormatter)
    rm.add_argument("username", help="the login name")
    model = sub.add_parser(
        "model",
        help="declare which models were trained on real children",
        formatter_class=HelpFormatter,
    )
    model.add_argument("--database", default=DEFAULT_URL, help=DATABASE_HELP)
    msub = model.add_subparsers(dest="action", required=True)
    real = msub.add_parser(
        "real",
        help="results of this model id no longer carry the simulated-data note",
        formatter_class=HelpFormatter,
    )
    real.add_argument("model_id", help="the model_id in the results (the model's manifest)")
    real.add_argument("--by", required=True, help="who vouches for it (recorded)")
    msub.add_parser("list", help="list the models declared real", formatter_class=HelpFormatter)
    cli_records.add_commands(sub, DEFAULT_URL, DATABASE_HELP)
    mig = sub.add_parser(
        "migrate", help="create or upgrade the database schema", formatter_class=HelpFormatter
    )
    mig.add_argument("--database", default=DEFAULT_URL, help=DATABASE_HELP)
    demo = sub.add_parser(
        "demo",
        help="embedded broker + dashboard + a simulated kiosk process",
        formatter_class=HelpFormatter,
    )
    demo.add_argument(
        "--listen", type=_listen, default="127.0.0.1:8080", help="HOST:PORT of the dashboard"
    )
    demo.add_argument("--walks", type=int, default=100, help="simulated walks, one about every 8 s")
    demo.add_argument(
        "--topic-prefix",
        default=TEST_PREFIX,
        help=f"topic prefix of the demo's simulated kiosk (not the production {DEFAULT_PREFIX})",
    )
    demo.add_argument(
        "--allow-production-prefix",
        action="store_true",
        help=f"allow --topic-prefix {DEFAULT_PREFIX} (the simulated results then look like real ones)",
    )
    demo.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)"
    )
    return ap


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        try:
            return args.password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            raise CentralError(f"--password-file {args.password_file}: {exc}") from None
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise CentralError("the passwords differ")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    from central import audit, users
    from central.db import open_store

    engine, sessions = open_store(args.database)
    try:
        with sessions() as db, db.begin():
            if args.action == "add":
                info = users.add_user(db, args.username, _password(args), args.role, args.school)
                audit.record(
                    db,
                    "cli",
                    "user_add",
                    detail=f"{info.username} {info.role} {','.join(info.schools)}",
                )
                print(
                    f"added {info.username} ({info.role}{': ' + ', '.join(info.schools) if info.schools else ''})"
                )
            elif args.action == "list":
                for info in users.list_users(db):
                    print(
                        f"{info.username}\t{info.role}\t{','.join(info.schools) or '(all schools)'}"
                    )
            else:
                users.remove_user(db, args.username)
                audit.record(db, "cli", "user_remove", detail=args.username)
                print(f"removed {args.username}")
    finally:
        engine.dispose()
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from central import audit
    from central.db import open_store
    from central.models import RealDataModel

    engine, sessions = open_store(args.database)
    try:
        with sessions() as db, db.begin():
            if args.action == "real":
                db.merge(RealDataModel(model_id=args.model_id, declared_by=args.by))
                audit.record(db, "cli", "model_real", detail=f"{args.model_id} by {args.by}")
                print(f"{args.model_id}: declared trained on real children by {args.by}")
            else:
                for row in db.scalars(select(RealDataModel).order_by(RealDataModel.model_id)):
                    print(
                        f"{row.model_id}\treal data\t{row.declared_by}\t{row.declared_at:%Y-%m-%d}"
                    )
    finally:
        engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            from central.serve import run_server

            return run_server(args)
        if args.command == "site":
            return cli_records.cmd_site(args)
        if args.command == "purge":
            return cli_records.cmd_purge(args)
        if args.command == "user":
            return cmd_user(args)
        if args.command == "model":
            return cmd_model(args)
        if args.command == "migrate":
            from central.db import make_engine, migrate

            migrate(make_engine(args.database))
            print(f"{args.database}: schema up to date")
            return 0
        from central.demo import run_demo

        return run_demo(args)
    except CentralError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
