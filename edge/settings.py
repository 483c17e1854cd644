"""The kiosk's configuration tree: one pydantic model per section, validated at start-up.

Loading it (file, environment, overrides) and translating validation errors
is in edge.config; these models only say what each key is and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.broker_url import parse_broker_url
from edge.threshold import CARD_NAME, ResolvedThreshold, resolve_threshold

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
    temporal: bool = False  # temporal filters smear a moving child across frames
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
    # auto: by the source's images (edge.segmenters): silhouettes -> passthrough, depth -> depth,
    # colour only -> person. color = background subtraction; fused = person gated by depth.
    method: Literal["auto", "depth", "color", "person", "fused", "passthrough"] = "auto"
    site_model: Path | None = None  # from `python -m edge calibrate-site`
    color_method: Literal["mog2", "knn"] = "mog2"
    person_threshold: float = Field(0.5, gt=0, lt=1)  # person / fused: probability that is person
    person_threads: int = Field(1, ge=1, le=64)  # person / fused: ONNX Runtime threads
    # ONNX Runtime execution providers for the person network, in order of preference; empty =
    # CPU. On a Jetson with onnxruntime-gpu: ["CUDAExecutionProvider", "CPUExecutionProvider"].
    person_providers: list[str] = Field(default_factory=list)
    min_area: int = Field(1500, ge=1)
    margin_mm: int = Field(150, ge=0, le=5000)


class WalkConfig(_Section):
    """The walk gate (edge.walks.WalkConfig, same key names and defaults; docs/PIPELINE.md)."""

    min_frames: int = Field(30, ge=1, le=10000)
    enter_frames: int = Field(3, ge=1, le=1000)
    exit_frames: int = Field(5, ge=1, le=1000)
    max_seconds: float = Field(20.0, gt=0, le=600)
    cooldown_seconds: float = Field(1.0, ge=0, le=600)
    # Visible span of a walk, 1.0 = a full walk: below short_coverage the child took too few
    # steps (too_short); below min_coverage the child left the view midway (partial_view).
    short_coverage: float = Field(0.52, ge=0, le=1)
    min_coverage: float = Field(0.85, ge=0, le=1)
    # Site geometry: what a full walk looks like from this camera.
    full_depth_travel_mm: float = Field(4000.0, gt=0, le=20000)  # toward/away walks
    full_lateral_travel: float = Field(0.6, gt=0, le=1)  # side-on walks: share of the image width
    walk_axis: Literal["auto", "depth", "lateral"] = "auto"
    depth_axis_mm: float = Field(1000.0, gt=0, le=20000)  # auto: this much depth change = toward/away
    max_border_share: float = Field(0.6, ge=0, le=1)  # more frames touching the side border: partial_view
    multiple_people_share: float = Field(0.2, gt=0, le=1)  # frames with >= 2 people: multiple_people
    on_shutdown: Literal["finish", "abandon"] = "finish"

    @model_validator(mode="after")
    def _coverage_order(self) -> WalkConfig:
        if self.short_coverage > self.min_coverage:
            raise ValueError(
                f"walk.short_coverage = {self.short_coverage} is above walk.min_coverage = "
                f"{self.min_coverage}: short_coverage must not exceed min_coverage (a walk is "
                "too_short below short_coverage, partial_view below min_coverage); lower "
                "walk.short_coverage or raise walk.min_coverage"
            )
        return self


class ModelConfig(_Section):
    path: Path = Path("models/demo/model.onnx")  # FP32: the demo INT8 forms miss their agreement target (models/demo/report.md)
    runner: Literal["onnxruntime", "torch", "tensorrt"] = "onnxruntime"
    frames: int = Field(30, ge=8, le=300)  # gaitmil.spec MIN_FRAMES..MAX_FRAMES
    threads: int | None = Field(None, ge=1, le=256)
    card: Path | None = None  # default: card.json beside the model
    # a model without a manifest is refused: nothing says what it is (a constant fake model would pass)
    require_manifest: bool = True


class ScreeningConfig(_Section):
    # None: the model card's referral_threshold, else DEFAULT_THRESHOLD
    threshold: float | None = Field(None, gt=0, lt=1)


class TLSConfig(_Section):
    """[mqtt.tls]: certificates for a TLS broker (mqtts://); a CA or client certificate turns TLS on."""

    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the broker's certificate; unset: the system's CAs"
    )
    cert_file: Path | None = Field(
        None, description="PEM client certificate, for brokers that require one (set key_file with it)"
    )
    key_file: Path | None = Field(None, description="PEM private key of cert_file, readable by the kiosk user only")
    insecure: bool = Field(
        False, description="skip the broker host-name check; for tests against self-signed brokers only"
    )

    @model_validator(mode="after")
    def _pairs(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both for a client certificate, or neither")
        return self


class MqttConfig(_Section):
    """[mqtt]: the broker connection, declared once for the publisher, the subscriber and `check`."""

    url: str = Field("mqtt://127.0.0.1:1883", description="broker as mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)")
    topic_prefix: str = Field(
        "gaitmil/v1", description="first topic levels: <prefix>/<site_id>/<kiosk_id>/{result,status,health,session}"
    )
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version; 5 reports refused publishes")
    allow_protocol_311: bool = Field(
        False,
        description="accept protocol 3.1.1, whose brokers acknowledge a publish the ACL refuses (the result is lost)",
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=256, description="MQTT client id; unset: gaitmil-<site_id>-<kiosk_id>"
    )
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between keep-alive pings")
    qos: Literal[1, 2] = Field(
        1, description="QoS of results: 1 or 2, the outbox deletes a result only once the broker acknowledged it"
    )
    username: str | None = Field(None, min_length=1, description="broker user name; unset: anonymous")
    password_file: Path | None = Field(
        None, description="file whose first line is the password of username (inline passwords are refused)"
    )
    tls: TLSConfig = Field(default_factory=TLSConfig, description="certificates for a TLS broker")
    reconnect_min_delay: float = Field(1.0, gt=0, le=600, description="first wait before reconnecting, seconds")
    reconnect_max_delay: float = Field(
        60.0, gt=0, le=3600, description="longest wait between reconnect attempts (the wait doubles up to it), seconds"
    )
    inflight: int = Field(20, ge=1, le=1000, description="results handed to the broker and not yet acknowledged, at most")
    session_token_ttl_seconds: float = Field(
        300.0, gt=0, le=86400, description="longest time a dashboard's subject token stays valid"
    )

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
        if isinstance(value, bool):
            raise ValueError("qos must be the number 1 or 2, not a boolean")
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or "" in value.split("/") or any(c in value for c in "+# \n\t\0"):
            raise ValueError("topic_prefix must be '/'-separated non-empty levels (no leading, trailing or double '/'), "
                             "without '+', '#' or spaces")
        return value

    @model_validator(mode="after")
    def _delays(self) -> MqttConfig:
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be at least reconnect_min_delay")
        if self.password_file is not None and not self.username:
            raise ValueError("password_file is set but username is not: set mqtt.username too")
        if self.protocol == "3.1.1" and not self.allow_protocol_311:
            raise ValueError(
                "protocol = \"3.1.1\" is refused: on MQTT 3.1.1 a broker acknowledges a publish its ACL refuses, so "
                "the kiosk deletes that result as delivered and it is lost without notice; use protocol = \"5\", or "
                "set mqtt.allow_protocol_311 = true to accept that risk (e.g. a broker without ACLs)"
            )
        return self


class OutboxConfig(_Section):
    path: Path | None = None  # default <state_dir>/outbox.sqlite3
    disk_budget_mb: float = Field(256.0, gt=0, le=1_048_576, allow_inf_nan=False)  # at most 1 TiB
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

