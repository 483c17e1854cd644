"""The kiosk's configuration tree: one pydantic model per section, validated at start-up.

Loading it (file, environment, overrides) and translating validation errors
is in edge.config; these models only say what each key is and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from edge.publishing.broker_url import parse_broker_url
from gaitcontract import topics
from gaitcontract.model_folder import CARD_NAME

if TYPE_CHECKING:
    from edge.model_store.store import ActiveModel

# the checkout (or install prefix) that holds edge/ and models/
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
STATE_FOLDER = "gaitmil-edge"


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """systemd's StateDirectory=, else the per-user XDG state folder; never the working directory."""
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        # systemd sets it (several folders are ':'-separated; the unit names one)
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / STATE_FOLDER


# ids go into MQTT topic levels: no '/', '+', '#' or spaces
ID_PATTERN = topics.ID_PATTERN.pattern


class _Section(BaseModel):
    # unknown keys are errors: a typo must not silently fall back to a default
    model_config = ConfigDict(extra="forbid", validate_default=True)


class KioskIdentity(_Section):
    site_id: str = Field(
        "site-0",
        pattern=ID_PATTERN,
        description="The site (e.g. the school): letters, digits, `_ . -`; an MQTT topic level.",
    )
    kiosk_id: str = Field(
        "kiosk-0",
        pattern=ID_PATTERN,
        description="This kiosk (e.g. the corridor): letters, digits, `_ . -`; an MQTT topic level.",
    )


class RealSenseFilters(_Section):
    """librealsense post-processing of the depth stream, applied in the documented order."""

    decimation: int = Field(
        1,
        ge=1,
        le=8,
        description="Decimation filter magnitude: 2 halves the depth resolution (and intrinsics); 1 = off.",
    )
    spatial: bool = Field(True, description="Edge-preserving spatial filter (in disparity space).")
    temporal: bool = Field(
        False,
        description="Temporal filter; off because it smears a walking child across frames.",
    )
    hole_filling: bool = Field(
        True, description="Fill invalid (zero) depth pixels from their neighbours."
    )


class SourceConfig(_Section):
    uri: str = Field(
        "sim://?seed=0&walks=5",
        description="The camera or recording: sim://, realsense://[serial], realsense:///rec.db3, "
        "video:///file.mp4, /dev/videoN, rtsp://, silhouettes:///dir. Query options in the URI "
        "(e.g. realsense://?color=1) override the keys below.",
    )
    fps: float = Field(
        30.0,
        gt=0,
        le=120,
        description="Frames per second: the rate the RealSense camera, the simulator and a silhouette "
        "replay run at, and the walk gate's frame arithmetic (rejoin_s, stop_s). Video files and "
        "devices keep their own rate.",
    )
    color: bool = Field(
        False,
        description="Also deliver colour frames: RealSense streams colour aligned to depth, sim:// renders it "
        "(for segmentation.method person / fused).",
    )
    width: int = Field(
        640,
        ge=16,
        le=4096,
        description="RealSense stream width in pixels (depth, and colour when on); other sources deliver their own size.",
    )
    height: int = Field(
        480,
        ge=16,
        le=4096,
        description="RealSense stream height in pixels (depth, and colour when on); other sources deliver their own size.",
    )
    timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds without a frame before the kiosk counts a camera stall and says so.",
    )
    queue_frames: int = Field(
        8,
        ge=1,
        le=1024,
        description="Capture -> segmentation queue length in frames; when full, frames are dropped and counted.",
    )
    max_frame_pixels: int = Field(
        16_777_216,
        ge=256,
        le=1 << 30,
        description="Largest frame, in pixels (width x height), any source may deliver; larger frames are "
        "counted as bad (health frames_bad) and skipped, and a silhouette PNG is checked from its header "
        "before it is decoded, so a decompression bomb costs no memory. 16,777,216 = 4096 x 4096; "
        "raise it only for a camera that really delivers more.",
    )
    realsense: RealSenseFilters = Field(
        default_factory=RealSenseFilters,
        description="RealSense depth post-processing filters.",
    )


class SegmentationConfig(_Section):
    method: Literal["auto", "depth", "color", "person", "fused", "passthrough"] = Field(
        "auto",
        description="auto picks by the source's images (silhouettes -> passthrough, depth -> depth, colour "
        "only -> person); color = background subtraction; fused = person gated by depth. A method the "
        "source cannot serve stops the kiosk at start-up.",
    )
    site_model: Path | None = Field(
        None,
        description="The empty corridor's depth model from `python -m edge calibrate-site` (depth, fused).",
    )
    color_method: Literal["mog2", "knn"] = Field(
        "mog2",
        description="Background subtractor for method = color.",
    )
    person_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="person / fused: the network's probability above which a pixel is person.",
    )
    person_threads: int = Field(1, ge=1, le=64, description="person / fused: ONNX Runtime threads.")
    person_providers: list[str] = Field(
        default_factory=list,
        description="person / fused: ONNX Runtime execution providers in order of preference; [] = CPU. "
        'Jetson with onnxruntime-gpu: ["CUDAExecutionProvider", "CPUExecutionProvider"].',
    )
    min_area: int = Field(
        1500,
        ge=1,
        description="Pixels: smaller components are not a person, for the segmenter and for the walk gate "
        "(a child ~6 m from the camera is ~1,500 px).",
    )
    margin_mm: int = Field(
        150,
        ge=0,
        le=5000,
        description="Depth: how many millimetres closer than the empty corridor a pixel must be to be foreground.",
    )
    # What counts as a person-sized component and how it is cleaned, for the depth, color, person
    # and fused segmenters (they take this section itself: edge.segmentation.depth); pixels are
    # camera pixels unless marked "working": the segmenters clean masks at half resolution.
    min_height_px: int = Field(
        48,
        ge=1,
        le=4096,
        description="Pixels: a shorter component is not a person (a child ~6 m away).",
    )
    open_px: int = Field(
        3, ge=0, le=64, description="Working pixels: morphological opening that removes speckle."
    )
    close_px: int = Field(
        7,
        ge=0,
        le=64,
        description="Working pixels: closing that joins parts split by depth holes (with depth it only adds "
        "pixels without a valid depth, so real gaps between the legs stay open).",
    )
    fill_holes: bool = Field(
        True,
        description="Fill holes inside the person (with depth only holes without a valid depth).",
    )
    attach_px: int = Field(
        4,
        ge=0,
        le=256,
        description="Working pixels: also keep pieces whose box lies this close to the person's (a head or foot "
        "cut off by a depth hole).",
    )
    min_piece_px: int = Field(
        12,
        ge=0,
        le=100000,
        description="Working pixels: smaller pieces near the person are speckle.",
    )
    behind_mm: int = Field(
        1500,
        ge=0,
        le=20000,
        description="Depth: drop pixels this many millimetres behind the person's median depth (flying pixels); "
        "0 keeps them. 700 lost children at the far end of the corridor.",
    )
    stereo_shadow_left: bool = Field(
        True,
        description="Depth: fill invalid pixels only right of valid person pixels (the stereo shadow of a "
        "left-reference camera such as RealSense).",
    )
    flying_mm: int = Field(
        300,
        ge=0,
        le=20000,
        description="Depth: edge pixels this many millimetres (or 10 % of the depth, if more) behind their "
        "nearest person neighbour are flying pixels and dropped; 0 keeps them.",
    )


class WalkConfig(_Section):
    """The walk gate (edge.walks.assembler.WalkAssembler; docs/PIPELINE.md)."""

    min_frames: int = Field(
        30,
        ge=1,
        le=10000,
        description="Kept frames a walk needs (about one gait cycle at 30 fps); fewer: retake/too_short.",
    )
    enter_frames: int = Field(
        3,
        ge=1,
        le=1000,
        description="Consecutive frames with a person before a walk starts (hysteresis).",
    )
    exit_frames: int = Field(
        5,
        ge=1,
        le=1000,
        description="Consecutive frames without a person before a walk ends (hysteresis).",
    )
    max_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Seconds: a longer walk gives retake/too_long.",
    )
    cooldown_seconds: float = Field(
        1.0,
        ge=0,
        le=600,
        description="Seconds after a walk before the next one may start.",
    )
    short_coverage: float = Field(
        0.52,
        ge=0,
        le=1,
        description="Visible share of a full walk below which the child took too few steps: retake/too_short.",
    )
    min_coverage: float = Field(
        0.85,
        ge=0,
        le=1,
        description="Visible share of a full walk below which the child left the view midway: "
        "retake/partial_view (at least short_coverage).",
    )
    full_depth_travel_mm: float = Field(
        4000.0,
        gt=0,
        le=20000,
        description="Site geometry, toward/away walks: millimetres of depth travel of a full walk.",
    )
    full_lateral_travel: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Site geometry, side-on walks: share of the image width a full walk crosses.",
    )
    walk_axis: Literal["auto", "depth", "lateral"] = Field(
        "auto",
        description="Which travel measures coverage; auto decides per walk by depth_axis_mm.",
    )
    depth_axis_mm: float = Field(
        1000.0,
        gt=0,
        le=20000,
        description="auto: a depth change of this many millimetres makes a walk toward/away.",
    )
    max_border_share: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of frames touching the side border above which: retake/partial_view.",
    )
    multiple_people_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Share of a walk's frames with someone else in the gate's zone too (both off the image "
        "border) at which: retake/multiple_people; below it those frames are left out.",
    )
    stop_s: float = Field(
        1.2,
        gt=0,
        le=60,
        description="Seconds of standing still (below stop_depth_mm and stop_lateral_px) that make a "
        "walk retake/stopped.",
    )
    stop_depth_mm: float = Field(
        150.0,
        ge=0,
        le=5000,
        description="Stop test: less depth motion than this (millimetres) over stop_s is still.",
    )
    stop_lateral_px: float = Field(
        12.0,
        ge=0,
        le=4096,
        description="Stop test: less image motion than this (pixels, sideways and of the feet) over stop_s is still.",
    )
    straight_only: bool = Field(
        True,
        description="Keep only the straight part of a walk (turns into and out of the corridor are dropped as "
        "`turning`): the model was trained on children walking along the corridor.",
    )
    rejoin_s: float = Field(
        1.5,
        ge=0,
        le=60,
        description="Seconds a walk shorter than min_frames waits for the child to reappear, so one walk "
        "gives one result.",
    )
    straight_window_s: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Seconds over which the speed along the walk is fitted (about a stride).",
    )
    straight_speed_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Frames moving at least this share of the cruise speed are the straight part.",
    )
    track_max_jump: float = Field(
        0.6,
        gt=0,
        le=10,
        description="Tracker: box heights a person's centre may move from its predicted place per frame "
        "and stay the same person (a queue's next child is a new walk).",
    )
    track_max_size_change: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Tracker: relative change of a person's box height per frame beyond which it is "
        "another person (1: twice or half as tall; not applied to boxes cut by the image border). "
        "Loose on purpose: a colour mask that loses the legs for a frame is a third shorter.",
    )
    track_depth_jump_mm: float = Field(
        500.0,
        gt=0,
        le=20000,
        description="Tracker: change of a person's median depth per frame (millimetres) beyond which it "
        "is another person.",
    )
    fragment_frames: int = Field(
        15,
        ge=1,
        le=10000,
        description="A track seen in fewer frames than this, or only ever at the border, is a fragment: "
        "dropped and counted (health fragments_dropped), never a retake unless a session token saw "
        "nothing else.",
    )
    on_shutdown: Literal["finish", "abandon"] = Field(
        "finish",
        description="On SIGTERM: finish (judge) the walk in progress, or abandon it (retake/interrupted).",
    )

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
    path: Path = Field(
        Path("models/demo/model.onnx"),
        description="The model file; FP32 because the demo INT8 forms miss their agreement target "
        "(models/demo/report.md).",
    )
    runner: Literal["onnxruntime", "torch", "tensorrt"] = Field(
        "onnxruntime",
        description="The inference runtime for model.path.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Intra-op threads; unset: the runner's choice.",
    )
    card: Path | None = Field(
        None, description="The model card; unset: card.json beside the model."
    )
    require_manifest: bool = Field(
        True,
        description="Refuse a model without its manifest (nothing would say what it is); false accepts it "
        "with a warning. For the runners that read manifests (onnxruntime, tensorrt).",
    )
    store: Path | None = Field(
        None,
        description="The model store folder (`python -m edge model ...`; systemd: "
        "/var/lib/gaitmil-edge/models). Set: the kiosk runs the store's active model (or model.pin) "
        "with its card, and model.path and model.card must not be set.",
    )
    pin: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="With model.store: run this installed model id instead of the active one "
        "(`model activate` then changes nothing until the pin is removed).",
    )
    trusted_keys: list[Path] = Field(
        default_factory=list,
        description="The district's Ed25519 public keys (PEM files): `model install BUNDLE` accepts only "
        "bundles signed by one of them.",
    )
    inference: Literal["whole_walk", "streaming"] = Field(
        "whole_walk",
        description="whole_walk: the model runs on the walk's frames when the walk ends. streaming: "
        "a worker encodes each accepted frame while the child walks and only the walk head runs "
        "at walk end (encoder.onnx + head.onnx + model.split.json beside model.path, from "
        "`python -m export split`; onnxruntime only; docs/PIPELINE.md).",
    )
    stream_queue_frames: int = Field(
        64,
        ge=1,
        le=4096,
        description="streaming: accepted frames waiting for the encoder worker; a frame the full "
        "queue refuses is counted and encoded at walk end.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_frames(cls, data: object) -> object:
        if isinstance(data, Mapping) and "frames" in data:
            raise ValueError(
                "model.frames was removed: the frames sampled per walk are the model's input length, "
                "fixed when the model was exported; delete the key"
            )
        return data

    @model_validator(mode="after")
    def _store_or_path(self) -> ModelConfig:
        named = {"path", "card"} & self.model_fields_set
        if self.store is not None and named:
            keys = " and ".join(f"model.{key}" for key in sorted(named))
            raise ValueError(
                f"model.store and {keys} are both set: with a store the kiosk runs the store's "
                f"active model and its card; remove {keys} (or model.store)"
            )
        if self.pin is not None and self.store is None:
            raise ValueError("model.pin names a model in the store: set model.store too")
        if "path" not in self.model_fields_set and not self.path.is_absolute():
            # the default names the checkout's demo model: found from the package, never the
            # working directory (a kiosk started elsewhere would not find it)
            self.path = PACKAGE_ROOT / self.path
        return self


class ScreeningConfig(_Section):
    threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Refer when P(not negative) >= threshold; unset: the model card's referral_threshold, "
        "else 0.5.",
    )
    target: Literal["sensitivity", "referral_rate"] | None = Field(
        None,
        description="A district's operating point instead of the card's default threshold: "
        "sensitivity (keep screening sensitivity >= target_value) or referral_rate (refer at most "
        "target_value of the children screened, at a 2.5 % prevalence). The threshold is the model "
        "card's operating point for it, chosen on validation walks; a card without that point is a "
        "start-up error. Unset: the card's referral_threshold (95 % sensitivity).",
    )
    target_value: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The value of screening.target, as a fraction (0.95 sensitivity, 0.05 "
        "referral rate); must match a row of the card's operating_points.",
    )
    rescreen: bool = Field(
        False,
        description="Ask the child to walk again (outcome rescreen) when P(not negative) lies in "
        "the model card's rescreen band around the threshold, instead of deciding on an uncertain "
        "walk. The band is chosen on validation walks for a stated rescreen rate.",
    )
    walks_per_child: int = Field(
        1,
        ge=1,
        le=3,
        description="Walks judged per session token: the token is kept until this many walks were "
        "judged (refer/no referral); the result of the last carries child_decision, the mean (or, "
        "by the model card's child_rule, the highest) P(not negative) of the token's walks "
        "against the threshold. 1: one walk, no block.",
    )
    allow_simulated_model: bool = Field(
        False,
        description="Let the service (`edge run --service`) screen with a model whose card says "
        "trained_on = simulated (or says nothing). Only for demos and benchmarks: such a model has "
        "never seen a real child walk.",
    )

    @model_validator(mode="after")
    def _target_pairs(self) -> ScreeningConfig:
        if (self.target is None) != (self.target_value is None):
            raise ValueError(
                "screening.target and screening.target_value go together: set both "
                '(e.g. target = "referral_rate", target_value = 0.05), or neither'
            )
        if self.target is not None and self.threshold is not None:
            raise ValueError(
                "screening.threshold and screening.target are both set: a fixed threshold or a "
                "target whose threshold the model card holds; remove one"
            )
        return self


class TLSConfig(_Section):
    """[mqtt.tls]: certificates for a TLS broker (mqtts://); a CA or client certificate turns TLS on."""

    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed the broker's certificate; unset: the system's CAs",
    )
    cert_file: Path | None = Field(
        None,
        description="PEM client certificate, for brokers that require one (set key_file with it)",
    )
    key_file: Path | None = Field(
        None, description="PEM private key of cert_file, readable by the kiosk user only"
    )
    insecure: bool = Field(
        False,
        description="skip the broker host-name check; for tests against self-signed brokers only",
    )

    @model_validator(mode="after")
    def _pairs(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "cert_file and key_file go together: set both for a client certificate, or neither"
            )
        return self


class MqttConfig(_Section):
    """[mqtt]: the broker connection, declared once for the publisher, the subscriber and `check`."""

    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="broker as mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)",
    )
    topic_prefix: str = Field(
        topics.DEFAULT_PREFIX,
        description="first topic levels: <prefix>/<site_id>/<kiosk_id>/{result,status,health,session}",
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "5", description="MQTT protocol version; 5 reports refused publishes"
    )
    allow_protocol_311: bool = Field(
        False,
        description="accept protocol 3.1.1, whose brokers acknowledge a publish the ACL refuses (the result is lost)",
    )
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="MQTT client id; unset: gaitmil-<site_id>-<kiosk_id>",
    )
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between keep-alive pings")
    qos: Literal[1, 2] = Field(
        1,
        description="QoS of results: 1 or 2, the outbox deletes a result only once the broker acknowledged it",
    )
    username: str | None = Field(
        None, min_length=1, description="broker user name; unset: anonymous"
    )
    password_file: Path | None = Field(
        None,
        description="file whose first line is the password of username (inline passwords are refused)",
    )
    tls: TLSConfig = Field(default_factory=TLSConfig, description="certificates for a TLS broker")
    reconnect_min_delay: float = Field(
        1.0, gt=0, le=600, description="first wait before reconnecting, seconds"
    )
    reconnect_max_delay: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="longest wait between reconnect attempts (the wait doubles up to it), seconds",
    )
    inflight: int = Field(
        20,
        ge=1,
        le=1000,
        description="results handed to the broker and not yet acknowledged, at most",
    )
    session_token_ttl_seconds: float = Field(
        300.0, gt=0, le=86400, description="longest time a dashboard's subject token stays valid"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: object) -> object:
        if isinstance(data, Mapping) and "password" in data:
            raise ValueError(
                "an inline `password` is not accepted: put the password in a file readable only by the "
                "kiosk user and set mqtt.password_file to its path"
            )
        return data

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
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
    def _qos_text(cls, value: object) -> object:
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
            raise ValueError(
                "topic_prefix must be '/'-separated non-empty levels (no leading, trailing or double '/'), "
                "without '+', '#' or spaces"
            )
        return value

    @model_validator(mode="after")
    def _delays(self) -> MqttConfig:
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be at least reconnect_min_delay")
        if self.password_file is not None and not self.username:
            raise ValueError("password_file is set but username is not: set mqtt.username too")
        if self.protocol == "3.1.1" and not self.allow_protocol_311:
            raise ValueError(
                'protocol = "3.1.1" is refused: on MQTT 3.1.1 a broker acknowledges a publish its ACL refuses, so '
                'the kiosk deletes that result as delivered and it is lost without notice; use protocol = "5", or '
                "set mqtt.allow_protocol_311 = true to accept that risk (e.g. a broker without ACLs)"
            )
        return self


class OutboxConfig(_Section):
    path: Path | None = Field(
        None, description="The outbox database; unset: <state_dir>/outbox.sqlite3."
    )
    disk_budget_mb: float = Field(
        256.0,
        gt=0,
        le=1_048_576,
        allow_inf_nan=False,
        description="Megabytes the outbox may use (finite, at most 1 TiB); when full, new results are "
        "refused and an alarm raised, nothing is dropped.",
    )
    alarm_fraction: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Health alarm above this fraction of disk_budget_mb.",
    )
    flush_seconds: float = Field(
        10.0,
        ge=0,
        le=600,
        description="On shutdown, seconds to wait for the broker's acknowledgements.",
    )
    expire_days: float = Field(
        14.0,
        gt=0,
        le=3650,
        description="Undelivered results older than this many days are deleted (privacy) and counted.",
    )


class HealthConfig(_Section):
    interval_seconds: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="Seconds between health messages.",
    )
    latency_window: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="Most recent walks kept for the latency percentiles (constant memory over months).",
    )


class PrivacyConfig(_Section):
    record_walks: bool = Field(
        False,
        description="Write each walk's silhouettes to record_dir (on-site calibration only); nothing is "
        "written when off.",
    )
    record_dir: Path | None = Field(
        None, description="Where record_walks writes; required when it is on."
    )

    @model_validator(mode="after")
    def _dir(self) -> PrivacyConfig:
        if self.record_walks and self.record_dir is None:
            raise ValueError(
                "record_walks is on but record_dir is not set: name the folder for the recordings"
            )
        return self


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO",
        description="Log level (any case).",
    )
    json_lines: bool = Field(False, alias="json", description="Log JSON lines for log collectors.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KioskConfig(_Section):
    kiosk: KioskIdentity = Field(default_factory=KioskIdentity, description="Who this kiosk is.")
    source: SourceConfig = Field(default_factory=SourceConfig, description="The camera.")
    segmentation: SegmentationConfig = Field(
        default_factory=SegmentationConfig,
        description="Frames -> person masks.",
    )
    walk: WalkConfig = Field(
        default_factory=WalkConfig, description="The walk gate: masks -> walks or retakes."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The classifier.")
    screening: ScreeningConfig = Field(
        default_factory=ScreeningConfig, description="The referral decision."
    )
    mqtt: MqttConfig = Field(
        default_factory=MqttConfig, description="The broker results are published to."
    )
    outbox: OutboxConfig = Field(
        default_factory=OutboxConfig, description="Results stored until acknowledged."
    )
    health: HealthConfig = Field(default_factory=HealthConfig, description="The health topic.")
    privacy: PrivacyConfig = Field(
        default_factory=PrivacyConfig, description="What may be written to disk."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logs.")
    state_dir: Path | None = Field(
        None,
        description="Where the kiosk keeps its outbox and other state; unset: $STATE_DIRECTORY (the "
        "systemd unit's /var/lib/gaitmil-edge), else $XDG_STATE_HOME/gaitmil-edge, else "
        "~/.local/state/gaitmil-edge. Never the working directory.",
    )

    # the store's active (or pinned) model when model.store is set (edge.config resolves it)
    _active_model: ActiveModel | None = PrivateAttr(None)

    def set_active_model(self, active: ActiveModel) -> None:
        self._active_model = active

    @property
    def active_model(self) -> ActiveModel | None:
        """The model store's ActiveModel the kiosk runs, or None without model.store."""
        return self._active_model

    # -- derived values the service needs -------------------------------------------------

    @property
    def state_path(self) -> Path:
        """state_dir, or its default (see default_state_dir) when unset."""
        return self.state_dir if self.state_dir is not None else default_state_dir()

    @property
    def outbox_path(self) -> Path:
        return (
            self.outbox.path if self.outbox.path is not None else self.state_path / "outbox.sqlite3"
        )

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"gaitmil-{self.kiosk.site_id}-{self.kiosk.kiosk_id}"

    @property
    def card_path(self) -> Path:
        return (
            self.model.card if self.model.card is not None else self.model.path.parent / CARD_NAME
        )
