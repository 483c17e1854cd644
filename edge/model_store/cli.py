"""`python -m edge model install | list | activate | rollback | remove`: the kiosk's model store.

Also `python -m edge.model_store ...` with the same commands: it needs only the standard
library (install.sh runs it before the kiosk's venv has the package and its dependencies).

- `install BUNDLE|FOLDER [--activate]` copies a model into STORE/<model id>; a bundle is
  verified against the district's public keys (model.trusted_keys) before anything is unpacked.
- `list` prints every installed model: id, precision, trained_on, signer, gate figures,
  installed and activated times, and `*` at the active one.
- `activate ID [--file FORM]`, `rollback` (the previously active model), `remove ID`
  (never the active one).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge.errors import ConfigError, EdgeError, ModelError
from edge.model_store.store import ActiveModel, Gate, ModelStore, StoreEntry

log = logging.getLogger("edge.model_store")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_MODEL = 0, 1, 2, 3, 4


def _say(text: str, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `model` command and its subcommands, for edge.cli's parser (and this module's)."""
    from gaitcontract import HelpFormatter

    p = sub.add_parser(
        "model",
        formatter_class=HelpFormatter,
        help="install, list, activate, roll back or remove models in the kiosk's model store",
    )
    msub = p.add_subparsers(dest="model_command", required=True)

    def store_flags(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--store", type=Path, help="the model store folder (default: the config's model.store)"
        )
        q.add_argument(
            "--config", help="kiosk TOML file naming model.store, model.pin and model.trusted_keys"
        )

    q = msub.add_parser(
        "install", formatter_class=HelpFormatter, help="install a signed bundle or a model folder"
    )
    store_flags(q)
    q.add_argument(
        "source", type=Path, help="a bundle file (python -m export bundle) or a model folder"
    )
    q.add_argument(
        "--file", help="the ONNX form the kiosk runs (default: the only one, else model.onnx)"
    )
    q.add_argument(
        "--activate", action="store_true", help="activate it after installing (release gate first)"
    )
    q.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="development only: accept a bundle without a valid signature (logged)",
    )
    q.add_argument(
        "--trusted-key",
        action="append",
        type=Path,
        default=[],
        help="an Ed25519 public key (PEM) that may sign bundles, besides the config's model.trusted_keys",
    )
    q.set_defaults(func=cmd_install)

    q = msub.add_parser(
        "build-engine",
        formatter_class=HelpFormatter,
        help="build (or reuse) the TensorRT engine of the active model on this machine (the engine unit)",
    )
    store_flags(q)
    q.add_argument("--timing-cache", help="TensorRT timing-cache folder, passed to export engine")
    q.set_defaults(func=cmd_build_engine)

    q = msub.add_parser("list", formatter_class=HelpFormatter, help="the installed models")
    store_flags(q)
    q.set_defaults(func=cmd_list)

    q = msub.add_parser("activate", formatter_class=HelpFormatter, help="make ID the active model")
    store_flags(q)
    q.add_argument("model_id")
    q.add_argument("--file", help="the ONNX form to run (default: the one chosen at install)")
    q.set_defaults(func=cmd_activate)

    q = msub.add_parser(
        "rollback", formatter_class=HelpFormatter, help="activate the previous model again"
    )
    store_flags(q)
    q.set_defaults(func=cmd_rollback)

    q = msub.add_parser(
        "remove", formatter_class=HelpFormatter, help="delete a model (never the active one)"
    )
    store_flags(q)
    q.add_argument("model_id")
    q.set_defaults(func=cmd_remove)


class _Settings:
    """What the model commands need from the kiosk config; read without resolving the model."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.store: Path | None = args.store
        self.pin: str | None = None
        self.trusted_keys: list[Path] = []
        self.runner = "onnxruntime"
        self.threads: int | None = None
        if args.config:
            from edge.config import load_config

            cfg = load_config(args.config, resolve_model=False)
            self.store = self.store or cfg.model.store
            self.pin = cfg.model.pin
            self.trusted_keys = list(cfg.model.trusted_keys)
            self.runner = cfg.model.runner
            self.threads = cfg.model.threads
        if self.store is None:
            raise ConfigError(
                "no model store named: pass --store DIR, or --config FILE whose model.store names it"
            )

    def gate(self) -> Gate:
        from edge.model_store.gate import make_gate

        return make_gate(self.runner, self.threads)


def cmd_install(args: argparse.Namespace) -> int:
    settings = _Settings(args)
    store = ModelStore(settings.store)  # type: ignore[arg-type]
    source: Path = args.source
    signer: str | None = None
    if source.is_file():
        from gaitcontract.bundle import BundleError, unpacked_bundle

        keys = [*settings.trusted_keys, *args.trusted_key]
        try:
            with unpacked_bundle(source, keys, store.root, args.allow_unsigned) as (
                folder,
                signer,
            ):
                entry, new = store.install_folder(folder, args.file, signer=signer)
        except BundleError as exc:  # a refused bundle is a model problem: the model exit code
            raise ModelError(str(exc)) from None
    elif source.is_dir():
        entry, new = store.install_folder(source, args.file)
    else:
        raise ModelError(f"{source}: no such bundle file or model folder")
    _say(
        f"{'installed' if new else 'already installed'}: {entry.model_id} ({entry.trained_on}) in {entry.folder}"
    )
    if args.activate:
        active = store.activate(entry.model_id, args.file, gate=settings.gate())
        _say(f"active: {active.model_id} {active.file}")
    return EXIT_OK


def cmd_activate(args: argparse.Namespace) -> int:
    settings = _Settings(args)
    active = ModelStore(settings.store).activate(args.model_id, args.file, gate=settings.gate())  # type: ignore[arg-type]
    _say(f"active: {active.model_id} {active.file}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    settings = _Settings(args)
    active = ModelStore(settings.store).rollback(gate=settings.gate())  # type: ignore[arg-type]
    _say(f"active: {active.model_id} {active.file} (rolled back)")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    settings = _Settings(args)
    ModelStore(settings.store).remove(args.model_id, pinned=settings.pin)  # type: ignore[arg-type]
    _say(f"removed: {args.model_id}")
    return EXIT_OK


def _gate_text(entry: StoreEntry, file: str) -> str:
    figures = entry.gate.get(file)
    if not figures:
        return "gate: not run"
    if figures.get("skipped"):
        return f"gate: skipped ({figures.get('reason')})"
    verdict = "passed" if figures.get("passed") else "REFUSED"
    text = (
        f"gate: {verdict} agreement {figures.get('agreement', float('nan')):.3f} "
        f"max|dP| {figures.get('max_abs_dprob', float('nan')):.4f} "
        f"(tolerance {figures.get('tolerance')}, {figures.get('walks')} walks)"
    )
    split = figures.get("split")
    if split:  # the streaming split (encoder + head), gated beside the whole-walk form
        text += f"; split {split.get('encoder', '?')}+{split.get('head', '?')}: " + (
            f"agreement {split['agreement']:.3f} max|dP| {split['max_abs_dprob']:.4f}"
            if "agreement" in split
            else str(split.get("reason"))
        )
    return text


def _build_engine(active: ActiveModel, timing_cache: str | None) -> int:
    import subprocess

    from edge.model_store.store import engine_path_for

    command = [
        sys.executable,
        "-m",
        "export",
        "engine",
        "--onnx",
        str(active.path),
        "--out",
        str(engine_path_for(active)),
        "--reuse-if-current",
    ]
    if timing_cache:
        command += ["--timing-cache", timing_cache]
    _say(f"engine for {active.model_id} {active.file}: {' '.join(command[1:])}", err=True)
    return subprocess.run(command, check=False).returncode


def cmd_build_engine(args: argparse.Namespace) -> int:
    """Build (or reuse) the active model's engine, then gate the engine itself.

    The gate of a TensorRT form can only run once its engine exists, so it runs here, in the
    engine unit: an engine that fails it puts the previous model back (its engine is reused or
    rebuilt) and the unit fails visibly, so the kiosk starts with the previous model.
    """
    from edge.model_store import gate as gates
    from edge.model_store.store import engine_path_for

    settings = _Settings(args)
    store = ModelStore(settings.store)  # type: ignore[arg-type]
    active = store.resolve(settings.pin)
    built = _build_engine(active, args.timing_cache)
    if built != 0:
        return built
    figures = gates.run_gate(
        active.entry, active.file, "tensorrt", settings.threads, model_path=engine_path_for(active)
    )
    store.record_gate(active.model_id, f"{active.file}@tensorrt", figures)
    if figures.get("passed"):
        return EXIT_OK
    _say(
        f"error: release gate refused the engine of {active.model_id}: {figures.get('reason')}",
        err=True,
    )
    if active.pinned:
        _say("model.pin names it: unpin or pin another model; nothing was rolled back", err=True)
        return EXIT_MODEL
    previous = store.rollback(
        refused=f"release gate refused the engine of {active.model_id} {active.file}: "
        f"{figures.get('reason')}"
    )
    _say(f"rolled back to {previous.model_id} {previous.file}; building its engine", err=True)
    _build_engine(previous, args.timing_cache)
    return EXIT_MODEL


def cmd_list(args: argparse.Namespace) -> int:
    settings = _Settings(args)
    store = ModelStore(settings.store)  # type: ignore[arg-type]
    active = store.active()
    activated = store.activated_times()
    entries = store.entries()
    if not entries:
        _say(f"model store {store.root}: no models installed")
        return EXIT_OK
    for entry in entries:
        is_active = active is not None and active.model_id == entry.model_id
        file = active.file if is_active and active is not None else entry.default_file
        _say(
            f"{'*' if is_active else ' '} {entry.model_id}  {file} {entry.forms.get(file, 'unknown')}  "
            f"trained_on={entry.trained_on}  signer={entry.signer or 'unsigned'}  "
            f"installed={entry.installed_at}  activated={activated.get(entry.model_id, 'never')}"
            f"{'  pinned' if settings.pin == entry.model_id else ''}"
        )
        for form in sorted(entry.gate):
            _say(f"      {form}: {_gate_text(entry, form)}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except ConfigError as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_CONFIG
    except ModelError as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_MODEL
    except EdgeError as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.model_store")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["model", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)
