"""The kiosk's configuration: one typed tree, validated at start-up.

Layers, lowest to highest: built-in defaults, the TOML file, environment
variables `GAITMIL_<SECTION>__<KEY>=value` (nested keys with more `__`, e.g.
`GAITMIL_MQTT__TLS__CA_FILE`; top-level keys as `GAITMIL_STATE_DIR`), then
`overrides` (the CLI flags). Every error names the dotted key, the value,
where it came from and what is allowed. Relative paths are resolved against
the current working directory (the systemd unit sets WorkingDirectory).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

ENV_PREFIX = "GAITMIL_"
DEFAULT_THRESHOLD = 0.5
CARD_NAME = "card.json"
CARD_THRESHOLD_KEY = "referral_threshold"
MASK = "***"
# ids go into MQTT topic levels: no '/', '+', '#' or spaces
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Section(BaseModel):
    # unknown keys are errors: a typo must not silently fall back to a default
    model_config = ConfigDict(extra="forbid", validate_default=True)


class KioskIdentity(_Section):
    site_id: str = Field("site-0", pattern=ID_PATTERN)
    kiosk_id: str = Field("kiosk-0", pattern=ID_PATTERN)


class RealSenseFilters(_Section):
    decimation: int = Field(1, ge=1, le=8)
    spatial: bool = True
    temporal: bool = False  # smears moving children (REFERENCE.md "Capture")
    hole_filling: bool = True


class SourceConfig(_Section):
    uri: str = "sim://?seed=0&walks=5"
    fps: float = Field(30.0, gt=0, le=120)
    color: bool = False
    width: int = Field(640, ge=16, le=4096)
    height: int = Field(480, ge=16, le=4096)
    timeout_seconds: float = Field(5.0, gt=0, le=120)
    queue_frames: int = Field(8, ge=1, le=1024)
    realsense: RealSenseFilters = Field(default_factory=RealSenseFilters)


class SegmentationConfig(_Section):
    method: Literal["depth", "color", "passthrough"] = "depth"
    site_model: Path | None = None  # from `python -m edge calibrate-site`
    color_method: Literal["mog2", "knn"] = "mog2"
    min_area: int = Field(1500, ge=1)
    margin_mm: int = Field(150, ge=0, le=5000)


class WalkConfig(_Section):
    min_frames: int = Field(30, ge=1, le=10000)
    enter_frames: int = Field(3, ge=1, le=1000)
    exit_frames: int = Field(5, ge=1, le=1000)
    max_seconds: float = Field(20.0, gt=0, le=600)
    cooldown_seconds: float = Field(1.0, ge=0, le=600)
    min_coverage: float = Field(0.3, ge=0, le=1)
    on_shutdown: Literal["finish", "abandon"] = "finish"


class ModelConfig(_Section):
    path: Path = Path("models/demo/model.int8-cpu.onnx")
    runner: Literal["onnxruntime", "torch", "tensorrt"] = "onnxruntime"
    frames: int = Field(30, ge=8, le=300)  # gaitmil.spec MIN_FRAMES..MAX_FRAMES
    threads: int | None = Field(None, ge=1, le=256)
    card: Path | None = None  # default: card.json beside the model


class ScreeningConfig(_Section):
    # None: the model card's referral_threshold, else DEFAULT_THRESHOLD
    threshold: float | None = Field(None, gt=0, lt=1)


class TLSConfig(_Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname check; for tests against self-signed brokers only

    @model_validator(mode="after")
    def _pairs(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both for a client certificate, or neither")
        return self


class MqttConfig(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "gaitmil/v1"
    protocol: Literal["3.1.1", "5"] = "5"
    client_id: str | None = None  # default gaitmil-<site>-<kiosk>
    keepalive: int = Field(30, ge=5, le=3600)
    qos: Literal[1, 2] = 1  # the outbox needs the broker's acknowledgement: QoS 0 has none
    username: str | None = None
    password_file: Path | None = None
    tls: TLSConfig = Field(default_factory=TLSConfig)
    reconnect_min_delay: float = Field(1.0, gt=0, le=600)
    reconnect_max_delay: float = Field(60.0, gt=0, le=3600)
    inflight: int = Field(20, ge=1, le=1000)
    session_token_ttl_seconds: float = Field(300.0, gt=0, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "password" in data:
            raise ValueError(
                "an inline `password` is not accepted: put the password in a file readable only by the "
                "kiosk user and set mqtt.password_file to its path"
            )
        return data

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        # TOML `protocol = 5` arrives as an int; environment values as text
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {5: "5", 3.1: "3.1.1"}.get(value, value)
        if value in ("5.0", "v5", "mqttv5"):
            return "5"
        if value in ("v311", "3.1", "mqttv311"):
            return "3.1.1"
        return value

    @field_validator("qos", mode="before")
    @classmethod
    def _qos_text(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "+# "):
            raise ValueError("topic_prefix must be non-empty, without leading/trailing '/', '+', '#' or spaces")
        return value

    @model_validator(mode="after")
    def _delays(self) -> MqttConfig:
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be at least reconnect_min_delay")
        if self.password_file is not None and not self.username:
            raise ValueError("password_file is set but username is not: set mqtt.username too")
        return self


class OutboxConfig(_Section):
    path: Path | None = None  # default <state_dir>/outbox.sqlite3
    disk_budget_mb: float = Field(256.0, gt=0)
    alarm_fraction: float = Field(0.8, gt=0, le=1)
    flush_seconds: float = Field(10.0, ge=0, le=600)
    expire_days: float = Field(14.0, gt=0, le=3650)


class HealthConfig(_Section):
    interval_seconds: float = Field(60.0, gt=0, le=86400)


class PrivacyConfig(_Section):
    record_walks: bool = False  # silhouettes are written only when this is on
    record_dir: Path | None = None

    @model_validator(mode="after")
    def _dir(self) -> PrivacyConfig:
        if self.record_walks and self.record_dir is None:
            raise ValueError("record_walks is on but record_dir is not set: name the folder for the recordings")
        return self


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    json_lines: bool = Field(False, alias="json")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KioskConfig(_Section):
    kiosk: KioskIdentity = Field(default_factory=KioskIdentity)
    source: SourceConfig = Field(default_factory=SourceConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    walk: WalkConfig = Field(default_factory=WalkConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    screening: ScreeningConfig = Field(default_factory=ScreeningConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    state_dir: Path = Path("state")

    # -- derived values the service needs -------------------------------------------------

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path if self.outbox.path is not None else self.state_dir / "outbox.sqlite3"

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"gaitmil-{self.kiosk.site_id}-{self.kiosk.kiosk_id}"

    @property
    def card_path(self) -> Path:
        return self.model.card if self.model.card is not None else self.model.path.parent / CARD_NAME

    def threshold(self) -> ResolvedThreshold:
        """The referral threshold in force and where it came from."""
        return resolve_threshold(self)


@dataclass(frozen=True)
class ResolvedThreshold:
    value: float
    source: str  # "config", "model card <path>" or "default"


@dataclass(frozen=True)
class BrokerAddress:
    scheme: str  # "mqtt" or "mqtts"
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://host[:port]` or `mqtts://host[:port]` -> BrokerAddress (ValueError if malformed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"broker URL must start with mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host: use mqtt://HOST:PORT")
    if parts.username or parts.password:
        raise ValueError("broker URL must not carry credentials: use mqtt.username and mqtt.password_file")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker URL {url!r} has a bad port: {exc}") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"broker URL {url!r} has a path or query: use only mqtt://HOST:PORT")
    return BrokerAddress(parts.scheme, parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883))


def resolve_threshold(cfg: KioskConfig) -> ResolvedThreshold:
    """Config value, else the model card's referral_threshold, else DEFAULT_THRESHOLD."""
    if cfg.screening.threshold is not None:
        return ResolvedThreshold(cfg.screening.threshold, "config")
    card = cfg.card_path
    if not card.is_file():
        if cfg.model.card is not None:
            raise ConfigError(f"model.card = {str(card)!r}: file not found; fix the path or remove the key")
        return ResolvedThreshold(DEFAULT_THRESHOLD, f"default (no model card at {card})")
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
        value = data[CARD_THRESHOLD_KEY]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"model card {card}: cannot read {CARD_THRESHOLD_KEY!r} ({exc}); expected a JSON object with "
            f"{CARD_THRESHOLD_KEY!r} in (0, 1). Fix the card or set screening.threshold"
        ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(
            f"model card {card}: {CARD_THRESHOLD_KEY} = {value!r} is not a number in (0, 1); "
            "fix the card or set screening.threshold"
        )
    return ResolvedThreshold(float(value), f"model card {card}")


# -- loading ----------------------------------------------------------------------------------


def _deep_merge(base: dict, layer: Mapping, origins: dict[str, str], origin: str, prefix: str = "") -> None:
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


def _nest(flat: Mapping[str, Any]) -> dict:
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
        rest = name[len(ENV_PREFIX):]
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
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = os.environ,
) -> KioskConfig:
    """Read, merge and validate the kiosk configuration; raise ConfigError naming every bad key."""
    data: dict = {}
    origins: dict[str, str] = {}
    source_name = "defaults"
    if path is not None:
        path = Path(path)
        source_name = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; give an existing TOML file (see edge/data/kiosk.example.toml)") from None
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
        raise ConfigError(f"invalid kiosk configuration ({source_name}):\n{_format_errors(exc, origins, data)}") from None
    _check_files(cfg)
    resolve_threshold(cfg)  # fail at start-up on a broken card, not at the first walk
    return cfg


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
            problems.append(f"  {key} = {str(file)!r}: file not found (or not a file); fix the path")
        elif file is not None and not os.access(file, os.R_OK):
            problems.append(f"  {key} = {str(file)!r}: not readable by this user; fix its owner or mode")
    if problems:
        raise ConfigError("invalid kiosk configuration:\n" + "\n".join(problems))


def read_password(cfg: KioskConfig) -> str | None:
    """The MQTT password from mqtt.password_file (first line, newline stripped), or None."""
    if cfg.mqtt.password_file is None:
        return None
    try:
        return cfg.mqtt.password_file.read_text(encoding="utf-8").splitlines()[0] if cfg.mqtt.password_file.stat().st_size else ""
    except OSError as exc:
        raise ConfigError(f"mqtt.password_file = {str(cfg.mqtt.password_file)!r} cannot be read: {exc}") from None


def effective_config(cfg: KioskConfig, mask_secrets: bool = True) -> dict:
    """The configuration in force as plain JSON-able data, with derived values and secrets masked."""
    data = cfg.model_dump(mode="json", by_alias=True)
    resolved = resolve_threshold(cfg)
    data["screening"]["threshold"] = resolved.value
    data["screening"]["threshold_source"] = resolved.source
    data["mqtt"]["client_id"] = cfg.client_id
    data["outbox"]["path"] = str(cfg.outbox_path)
    data["model"]["card"] = str(cfg.card_path)
    if mask_secrets:
        # the password itself is never in the config; the username and file path identify the kiosk's account
        if cfg.mqtt.username:
            data["mqtt"]["username"] = cfg.mqtt.username[:2] + MASK
    return data
