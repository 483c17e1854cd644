"""Every command-line tool in gaitmil/, gaitsim/, benchmarks/ and central/ has the same help habits:
`--help` exits 0 and shows each option's default, and `--version` names the project's version.

The tools are found by reading the sources (any module that builds an argparse.ArgumentParser), so a
new one is checked without editing this list. (edge/, export/ and calibration/ have their own.)
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from gaitcontract import SOFTWARE

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("gaitmil", "gaitsim", "benchmarks", "central")


def cli_modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).glob("*.py")):
            if "argparse.ArgumentParser(" in path.read_text(encoding="utf-8"):
                found.append(f"{package}.{path.stem}")
    return found


MODULES = cli_modules()


def test_the_tools_are_found():
    # a floor, not the list: a broken search must not pass by finding nothing
    assert {
        "gaitmil.train",
        "gaitmil.card",
        "gaitsim.dataset",
        "benchmarks.segment",
        "central.cli",
    } <= set(MODULES)


def help_of(
    module: str, argv: list[str], monkeypatch, capsys
) -> tuple[argparse.ArgumentParser, str]:
    """Run the tool's main(argv + ['--help']) in this process; return the parser that printed."""
    printed: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.print_help

    def recording(self, file=None):
        printed.append(self)
        return original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", recording)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main([*argv, "--help"])
    assert exit_info.value.code in (0, None), f"{module} --help exited {exit_info.value.code}"
    assert len(printed) == 1
    return printed[0], capsys.readouterr().out


def parsers_below(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and every subcommand's parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += parsers_below(sub)
    return found


def shows_defaults(parser: argparse.ArgumentParser) -> list[str]:
    """Options whose default the --help text does not show (or explain in words)."""
    text = " ".join(parser.format_help().split())
    missing = []
    for action in parser._actions:
        if (
            not action.option_strings
            or action.nargs == 0
            or action.default in (None, [], argparse.SUPPRESS)
        ):
            continue
        shown = f"(default: {action.default})" in text
        explained = "default" in (action.help or "").lower()
        if not (shown or explained):
            missing.append(action.option_strings[-1])
    return missing


@pytest.mark.parametrize("module", MODULES)
def test_help_exits_0_and_shows_every_default(module, monkeypatch, capsys):
    parser, out = help_of(module, [], monkeypatch, capsys)
    assert "usage:" in out and "--version" in out
    for each in parsers_below(parser):
        assert issubclass(each.formatter_class, argparse.ArgumentDefaultsHelpFormatter), each.prog
        assert shows_defaults(each) == [], f"{each.prog}: defaults not shown in --help"
        # a help line for every option: an option without one is left out of the defaults too
        for action in each._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # its commands have their own help
            assert action.help, f"{each.prog} {action.option_strings or action.dest}: no help text"
        each.format_help()  # no %-format errors in any help text


@pytest.mark.parametrize("module", MODULES)
def test_version_names_the_project_version(module, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--version"])
    assert exit_info.value.code in (0, None)
    assert SOFTWARE in capsys.readouterr().out


def test_python_dash_m_runs_the_same_help():
    # the in-process checks call main(); one real `python -m` per package entry style
    for command in (["-m", "benchmarks.segment", "--help"], ["-m", "central", "serve", "--help"]):
        done = subprocess.run(
            [sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "(default: " in done.stdout
