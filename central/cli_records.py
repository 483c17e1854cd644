"""`python -m central site|purge`: which sites central accepts, and deleting their records."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone

from central.errors import CentralError
from gaitcontract import HelpFormatter


def say(text: str) -> None:
    """One line to the operator's console (scripts and benchmarks read it), flushed at once."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _day(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--before {text!r}: use YYYY-MM-DD (UTC)") from None


def add_commands(
    sub: argparse._SubParsersAction, database_default: str, database_help: str
) -> None:
    site = sub.add_parser(
        "site",
        help="add or list the sites (schools) central accepts results from",
        formatter_class=HelpFormatter,
    )
    site.add_argument("--database", default=database_default, help=database_help)
    ssub = site.add_subparsers(dest="action", required=True)
    add = ssub.add_parser(
        "add", help="accept results from this site", formatter_class=HelpFormatter
    )
    add.add_argument("site_id", help="the kiosks' site_id")
    add.add_argument(
        "--test", action="store_true", help="a benchmark or demo site, not a real school"
    )
    add.add_argument("--by", default="cli", help="who adds it (recorded in the audit log)")
    ssub.add_parser("list", help="list the known sites", formatter_class=HelpFormatter)
    purge = sub.add_parser(
        "purge",
        help="delete a site's results and follow-ups, or everything older than N days",
        formatter_class=HelpFormatter,
    )
    purge.add_argument("--database", default=database_default, help=database_help)
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--site", default=None, help="the site whose records are deleted")
    which.add_argument(
        "--older-than-days",
        type=float,
        default=None,
        help="delete every result received more than this many days ago (the retention rule)",
    )
    purge.add_argument(
        "--before", type=_day, default=None, help="with --site: only results made before YYYY-MM-DD"
    )
    purge.add_argument("--by", default="cli", help="who purges (recorded in the audit log)")


def cmd_site(args: argparse.Namespace) -> int:
    from central.db import open_store
    from central.sites import add_site, list_sites

    engine, sessions = open_store(args.database)
    try:
        with sessions() as db, db.begin():
            if args.action == "add":
                info = add_site(db, args.site_id, test=args.test, by=args.by)
                say(f"added site {info.site_id} ({'test' if info.test else 'real'})")
            else:
                for s in list_sites(db):
                    kind = "test" if s.test else "real"
                    say(f"{s.site_id}\t{kind}\t{s.added_by}\t{s.added_at:%Y-%m-%d}")
    finally:
        engine.dispose()
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from central.db import open_store
    from central.sites import purge_older_than, purge_site

    if args.before is not None and args.site is None:
        raise CentralError("--before goes with --site (use --older-than-days for every site)")
    engine, sessions = open_store(args.database)
    try:
        with sessions() as db, db.begin():
            if args.site is not None:
                count = purge_site(db, args.site, args.before, by=args.by)
                when = f" made before {args.before:%Y-%m-%d}" if args.before else ""
                say(f"deleted {count} result(s) of site {args.site}{when}, with their follow-ups")
            else:
                count = purge_older_than(db, args.older_than_days, by=args.by)
                say(f"deleted {count} result(s) older than {args.older_than_days:g} days")
    finally:
        engine.dispose()
    return 0
