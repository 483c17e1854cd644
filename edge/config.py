"""The kiosk's configuration: one typed tree, validated at start-up.

Layers, lowest to highest: built-in defaults, the TOML file, environment
variables `GAITMIL_<SECTION>__<KEY>=value` (nested keys with more `__`, e.g.
`GAITMIL_MQTT__TLS__CA_FILE`; top-level keys as `GAITMIL_STATE_DIR`), then
`overrides` (the CLI flags). Every error names the dotted key, the value,
where it came from and what is allowed. Relative paths are resolved against
the current working directory (the systemd unit sets WorkingDirectory).

One public path each: the models of the tree are in edge.settings, loading
them is here, the referral threshold is edge.screening.threshold (read from the model card
once, by edge.wiring) and the broker URL edge.publishing.broker_url.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import typing
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from edge.errors import ConfigError
from edge.screening.threshold import Threshold
from edge.settings import KioskConfig, MqttConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

log = logging.getLogger(__name__)

ENV_PREFIX = "GAITMIL_"
MASK = "***"

__all__ = [
    "ENV_PREFIX",
    "MASK",
    "config_schema",
    "effective_config",
    "key_table",
    "load_config",
    "read_password",
    "schema_text",
]


# -- loading ----------------------------------------------------------------------------------


def _deep_merge(
    base: dict, layer: Mapping, origins: dict[str, str], origin: str, prefix: str = ""
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value, origins, origin, dotted + ".")
        elif isinstance(value, Mapping):
            base[key] = {}
            _deep_merge(base[key], value, origins, origin, dotted + ".")
        else:
            base[key] = value
            origins[dotted] = origin


def _nest(flat: Mapping[str, object]) -> dict:
    """{'mqtt.url': x} or {'mqtt': {'url': x}} -> nested dict."""
    nested: dict = {}
    for key, value in flat.items():
        if isinstance(value, Mapping):
            value = _nest(value)
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return nested


def _env_layer(env: Mapping[str, str]) -> tuple[dict, dict[str, str]]:
    sections = set(KioskConfig.model_fields) - {"state_dir"}
    layer: dict = {}
    names: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest == "STATE_DIR":
            layer["state_dir"] = value
            names["state_dir"] = name
            continue
        if "__" not in rest:
            continue  # GAITMIL_* variables of other tools; only SECTION__KEY is ours
        keys = [k.lower() for k in rest.split("__")]
        if keys[0] not in sections:
            raise ConfigError(
                f"environment variable {name}: unknown section {keys[0]!r}; "
                f"use GAITMIL_<SECTION>__<KEY> with SECTION one of {sorted(s.upper() for s in sections)}"
            )
        node = layer
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        names[".".join(keys)] = name
    return layer, names


def _format_errors(exc: ValidationError, origins: Mapping[str, str], data: Mapping) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        dotted = ".".join(loc) if loc else "(top level)"
        where = origins.get(dotted, "default" if loc else "")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = ", ".join(sorted(parent.model_fields)) if parent is not None else "?"
            lines.append(f"  {dotted}: unknown key ({where}); allowed keys here: {allowed}")
            continue
        if err["type"] == "missing":
            lines.append(f"  {dotted}: required key is missing")
            continue
        value = err.get("input")
        shown = repr(value) if not isinstance(value, Mapping) else "{...}"
        if isinstance(value, Mapping) and err["type"] == "value_error":
            lines.append(f"  {dotted}: {msg}")
        else:
            lines.append(f"  {dotted} = {shown} ({where}): {msg}")
    return "\n".join(lines)


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = KioskConfig
    for part in loc:
        field = model.model_fields.get(part)
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = os.environ,
    resolve_model: bool = True,
) -> KioskConfig:
    """Read, merge and validate the kiosk configuration; raise ConfigError naming every bad key.

    `resolve_model`: with model.store set, point model.path at the store's active (or pinned)
    model, so a store without one fails here, at start-up; the `model` commands read the
    config without it (they are how a store gets its first model).
    """
    data: dict = {}
    origins: dict[str, str] = {}
    source_name = "defaults"
    if path is not None:
        path = Path(path)
        source_name = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} not found; give an existing TOML file (see edge/data/kiosk.example.toml)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        _deep_merge(data, raw, origins, f"file {path}")
    if env is not None:
        env_layer, env_names = _env_layer(env)
        _deep_merge(data, env_layer, origins, "environment")
        origins.update({k: f"environment {v}" for k, v in env_names.items()})
    if overrides:
        _deep_merge(data, _nest(overrides), origins, "override")
    try:
        cfg = KioskConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid kiosk configuration ({source_name}):\n{_format_errors(exc, origins, data)}"
        ) from None
    _check_files(cfg)
    if resolve_model and cfg.model.store is not None:
        _resolve_store(cfg)
    return cfg


def _resolve_store(cfg: KioskConfig) -> None:
    from edge.model_store import ModelStore
    from edge.model_store.store import engine_path_for

    if cfg.model.store is None:
        return
    active = ModelStore(cfg.model.store).resolve(cfg.model.pin)
    # model.card stays unset: card_path is then card.json beside the model, in the store folder.
    # TensorRT runs the engine gaitmil-engine.service built beside the ONNX (never a copied one).
    cfg.model.path = engine_path_for(active) if cfg.model.runner == "tensorrt" else active.path
    cfg.set_active_model(active)


def _check_files(cfg: KioskConfig) -> None:
    """Secrets and certificates must exist at start-up; the model is checked by the runner."""
    problems = []
    files = {
        "mqtt.password_file": cfg.mqtt.password_file,
        "mqtt.tls.ca_file": cfg.mqtt.tls.ca_file,
        "mqtt.tls.cert_file": cfg.mqtt.tls.cert_file,
        "mqtt.tls.key_file": cfg.mqtt.tls.key_file,
    }
    for key, file in files.items():
        if file is not None and not file.is_file():
            problems.append(
                f"  {key} = {str(file)!r}: file not found (or not a file); fix the path"
            )
        elif file is not None and not os.access(file, os.R_OK):
            problems.append(
                f"  {key} = {str(file)!r}: not readable by this user; fix its owner or mode"
            )
    if problems:
        raise ConfigError("invalid kiosk configuration:\n" + "\n".join(problems))


def read_password(cfg: KioskConfig | MqttConfig) -> str | None:
    """The MQTT password from mqtt.password_file (first line, newline stripped), or None."""
    path = (cfg if isinstance(cfg, MqttConfig) else cfg.mqtt).password_file
    if path is None:
        return None
    _warn_if_others_can_read(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
    except OSError as exc:
        raise ConfigError(f"mqtt.password_file = {str(path)!r} cannot be read: {exc}") from None


def _warn_if_others_can_read(path: Path) -> None:
    """Like ssh and mosquitto: a secret that every user of the machine can read deserves a warning."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # read_password reports the unreadable file
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        log.warning(
            "mqtt.password_file %s can be read by every user of this machine (mode %o); "
            "restrict it: chmod 600 %s (owner: the kiosk user)",
            path,
            stat.S_IMODE(mode),
            path,
        )


def effective_config(cfg: KioskConfig, resolved: Threshold, mask_secrets: bool = True) -> dict:
    """The configuration in force as plain JSON-able data, with derived values and secrets masked.

    `resolved`: the threshold in force (edge.wiring.screening_threshold), shown with its source."""
    data = cfg.model_dump(mode="json", by_alias=True)
    data["screening"]["threshold"] = resolved.value
    data["screening"]["threshold_source"] = resolved.source
    if resolved.rescreen is not None:
        data["screening"]["rescreen_band"] = list(resolved.rescreen)
    data["mqtt"]["client_id"] = cfg.client_id
    data["outbox"]["path"] = str(cfg.outbox_path)
    data["model"]["card"] = str(cfg.card_path)
    if mask_secrets:
        # the password itself is never in the config; the username and file path identify the kiosk's account
        if cfg.mqtt.username:
            data["mqtt"]["username"] = cfg.mqtt.username[:2] + MASK
    return data


# -- documentation generated from the models -------------------------------------------------

SCHEMA_FILE = "docs/kiosk-config.schema.json"
TABLE_BEGIN = (
    "<!-- BEGIN key table: generated by `python -m edge config schema --markdown`; do not edit -->"
)
TABLE_END = "<!-- END key table -->"


def config_schema() -> dict[str, object]:
    """The JSON Schema of the kiosk configuration, for editors (e.g. with a TOML language server)."""
    schema = KioskConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gaitmil-edge kiosk configuration"
    return schema


def schema_text() -> str:
    """config_schema() as the committed file holds it."""
    return json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"


def key_table() -> str:
    """The Markdown table of every key: dotted key, default, allowed values, description."""
    lines = ["| key | default | allowed | what it is |", "|---|---|---|---|"]
    _table_rows(KioskConfig, "", lines)
    return "\n".join(lines) + "\n"


def _table_rows(model: type[BaseModel], prefix: str, lines: list[str]) -> None:
    nested = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            nested.append((key, field.annotation))
            continue
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else f"`{json.dumps(default, default=str)}`"
        text = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {shown} | {_allowed(field)} | {text} |")
    for key, sub in nested:
        _table_rows(sub, key + ".", lines)


def _allowed(field: FieldInfo) -> str:
    ann = field.annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Literal:
        return " \\| ".join(f"`{json.dumps(a)}`" for a in args)
    literal = [a for a in args if typing.get_origin(a) is typing.Literal]
    if literal and len(args) == 2 and type(None) in args:  # an optional choice: its values or unset
        return " \\| ".join(f"`{json.dumps(v)}`" for v in typing.get_args(literal[0])) + " or unset"
    if typing.get_origin(ann) is list:
        kind = f"list of {args[0].__name__}"
    else:
        names = [a.__name__ for a in (args or (ann,)) if isinstance(a, type)]
        kind = " or ".join({"NoneType": "unset", "Path": "path"}.get(n, n) for n in names)
    bounds = []
    for item in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            bounds.append(f"`{pattern}`")
    return ", ".join([kind, *bounds]) if kind else ", ".join(bounds)
