"""Every `python -m ...` command of this project in docs/DEPLOY.md, docs/BENCHMARKS.md and README.md is one its CLI takes:
the (sub)command exists, each --option is in its --help, and the values parse (choices, types).

Each command runs with `--help` appended: argparse then checks the subcommands, choices and types of
what comes before it and exits 0 without doing anything. Options it does not know are only
reported after the last argument, so those are checked against the --help text instead.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "docs" / "DEPLOY.md", REPO / "docs" / "BENCHMARKS.md", REPO / "README.md")
PACKAGES = ("edge", "export", "calibration", "gaitmil", "gaitsim", "benchmarks", "central")


def shell_lines(text: str) -> list[str]:
    """Lines of the fenced code blocks (continuations joined) and inline code spans."""
    fence = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
    lines = []
    for block in fence.findall(text):
        lines += block.replace("\\\n", " ").splitlines()
    prose = fence.sub("", text)
    lines += [span.replace("\n", " ") for span in re.findall(r"`([^`]*python3? -m [^`]*)`", prose)]
    return lines


def project_commands(doc: Path) -> list[list[str]]:
    """The argument lists after `python -m` that run one of this project's modules."""
    found = []
    for line in shell_lines(doc.read_text()):
        if "python" not in line:
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # a fragment of a longer command (e.g. a single inline span with a quote)
        for i, word in enumerate(words[:-2]):
            if re.search(r"(^|/)python3?$", word) and words[i + 1] == "-m":
                if words[i + 2].split(".")[0] in PACKAGES:
                    end = next(
                        (j for j in range(i + 2, len(words)) if words[j] in ("&&", "|", ";")),
                        len(words),
                    )
                    found.append(words[i + 2 : end])
    return found


@functools.cache
def run_help(args: tuple[str, ...]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def subcommand_path(command: list[str]) -> list[str]:
    """The module and the subcommands of `command` (words that are choices of the parser's {a,b,...})."""
    path = [command[0]]
    for word in command[1:]:
        if word.startswith("-"):
            break
        usage = run_help(tuple(path)).stdout
        choices = re.search(r"\{([\w,-]+)\}\s*\.\.\.", usage)
        if not choices or word not in choices.group(1).split(","):
            break
        path.append(word)
    return path


def all_commands() -> list[tuple[str, list[str]]]:
    return [(doc.name, command) for doc in DOCS for command in project_commands(doc)]


def test_the_docs_have_commands_to_check():
    names = {" ".join(command[:2]) for _, command in all_commands()}
    assert {
        "export onnx",
        "gaitmil.card --checkpoint",
        "calibration report",
        "edge calibrate-site",
    } <= names


@pytest.mark.slow  # one or two CLI start-ups per documented command
@pytest.mark.parametrize(
    "doc, command", all_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)[:60]
)
def test_command_matches_the_cli(doc, command):
    path = subcommand_path(command)
    options = {word.split("=")[0] for word in command if word.startswith("--")}
    help_text = run_help(tuple(path)).stdout
    unknown = sorted(o for o in options if not re.search(rf"{re.escape(o)}\b", help_text))
    assert not unknown, f"{doc}: `python -m {' '.join(command)}`: {' '.join(path)} has no {unknown}"
    # a value the shell computes ("$(...)") is left out with its option: only the shell can parse it
    args = [
        w
        for i, w in enumerate(command)
        if "$(" not in w and "$(" not in (command[i + 1 : i + 2] or [""])[0]
    ]
    parsed = subprocess.run(
        [sys.executable, "-m", *args, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert parsed.returncode == 0, (
        f"{doc}: `python -m {' '.join(command)}`: {parsed.stderr.strip()[-500:]}"
    )
