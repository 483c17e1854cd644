"""What the kiosk says about the model it runs: trained_on, store id, signer, gate, and the
judged walks it combines per child (screening.walks_per_child); and the
service's refusal of a simulated-data model.

The facts come from the store entry when model.store is set, else from the card (and the
manifest) beside model.path. They go into the retained status message and the health gauges,
so central's Fleet page can mark a kiosk that screens with a simulated-data model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.settings import KioskConfig

SIMULATED_SETTING = "screening.allow_simulated_model"


def _json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def trained_on(cfg: KioskConfig) -> str | None:
    """ "simulated" | "real" as the model's card (else its manifest) says; None if neither says."""
    active = cfg.active_model
    if active is not None:
        return str(active.entry.trained_on)
    said = _json(cfg.card_path).get("trained_on")
    if said is None:
        manifest = Path(cfg.model.path).parent / f"{Path(cfg.model.path).stem}.manifest.json"
        said = _json(manifest).get("trained_on")
    return str(said) if said is not None else None


def status_facts(cfg: KioskConfig) -> dict[str, str | int | None]:
    """The status message's model keys beyond the runner's identity (all optional in the schema)."""
    active = cfg.active_model
    facts: dict[str, str | int | None] = {"trained_on": trained_on(cfg)}
    # central's station marks a child done only after this many judged walks (or child_decision)
    facts["walks_per_child"] = int(cfg.screening.walks_per_child)
    if active is not None:
        # an engine's own gate (run by the engine unit) outranks its ONNX form's
        gate = (
            active.entry.gate.get(f"{active.file}@{cfg.model.runner}")
            or active.entry.gate.get(active.file)
            or {}
        )
        facts.update(
            store_id=active.model_id,
            signer=active.entry.signer,
            gate=("skipped" if gate.get("skipped") else "passed" if gate.get("passed") else None)
            if gate
            else None,
            activated_at=active.activated_at,
        )
    return facts


def refuse_simulated_model(cfg: KioskConfig) -> None:
    """The service screens children: refuse a model not known to be trained on real walks."""
    said = trained_on(cfg)
    if said == "real" or cfg.screening.allow_simulated_model:
        return
    what = (
        "was trained on simulated walks"
        if said == "simulated"
        else "does not say what it was trained on (no trained_on in its card or manifest)"
    )
    raise ConfigError(
        f"model {cfg.model.path} {what}: the service does not screen children with it. Install a "
        f"model trained on real walks (python -m edge model install), or, for a demo or benchmark "
        f"only, set {SIMULATED_SETTING} = true"
    )


def gate_alarm(cfg: KioskConfig) -> str | None:
    """A release-gate refusal since the active model was activated, as the health alarm's text."""
    active = cfg.active_model
    if active is None or cfg.model.store is None:  # an active model comes from a store
        return None
    from edge.model_store import ModelStore

    store = ModelStore(cfg.model.store)
    refused = store.refusal()
    if refused is not None:
        return refused
    for entry in store.entries():
        for file, figures in entry.gate.items():
            if not figures.get("passed") and str(figures.get("at", "")) >= active.activated_at:
                return (
                    f"release gate refused {entry.model_id} {file}: {figures.get('reason')}; "
                    f"{active.model_id} stays active"
                )
    return None
