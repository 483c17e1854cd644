"""The Gait-MIL network: per-frame ResNet-9, horizontal pyramid pooling,
phase bags from a fixed centroid lookup, gated attention MIL pooling and a
ScoNet-style head (separate FCs per part, BNNeck, cosine logits).

Tensors in, tensors out: no labels, no device moves, no Python control flow
on tensor values, so the same graph exports to ONNX (opset 17) without
Loop/If/Scan/NonZero and runs in TensorRT with static shapes.

Shapes: B walks, T frames, P parts (16), C channels, E embedding, K phases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc
import torch.nn.functional as F
from torch import Tensor, nn

from gaitcontract.errors import ConfigError, require_choice
from gaitcontract.spec import (
    DEFAULT_PHASES,
    INPUT_HEIGHT,
    INPUT_RESOLUTIONS,
    INPUT_WIDTH,
    NUM_CLASSES,
)
from gaitmil.lateral_profile import LateralProfileClassifier, row_moments

# A finite "minus infinity" for masked softmaxes: exp(-1e4) is exactly 0 in
# float32 and float16, and -1e4 is representable in float16 (max 65504),
# so masked entries never turn into NaN, not even when a whole row is masked.
MASK_FILL = -1.0e4

# Phase features: silhouettes average-pooled by 4x4, 64x44 -> 16x11.
PHASE_POOL = 4
PHASE_DIM = (INPUT_HEIGHT // PHASE_POOL) * (INPUT_WIDTH // PHASE_POOL)  # 176

PRESETS: dict[str, tuple[int, int, int, int]] = {
    "base": (64, 128, 256, 512),  # ScoNet-MT widths
    "edge": (32, 64, 128, 256),
    "tiny": (16, 32, 64, 128),
}
POOLINGS = ("mil", "max", "mean")


def walk_residual_features(pooled: Tensor, frame_mask: Tensor) -> Tensor:
    """Each frame minus its walk's mean silhouette (valid frames only) [B, T, D].

    The walk mean carries the child's build and clothing; what is left is how
    the limbs move, so the centroids split the gait cycle rather than the
    walkers. A masked ReduceMean over T: no data-dependent shapes."""
    m = frame_mask.to(pooled.dtype).unsqueeze(-1)  # [B, T, 1]
    mean = (pooled * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
    return pooled - mean


def appearance_features(pooled: Tensor, frame_mask: Tensor) -> Tensor:
    """The pooled silhouette itself (the first construction, kept for ablations)."""
    return pooled


# Phase features the centroid lookup runs on, selected once per model (GaitMILConfig.phase_features).
PHASE_FEATURES = {"walk_residual": walk_residual_features, "appearance": appearance_features}
# checkpoints written before the option existed used the appearance lookup
LEGACY_PHASE_FEATURES = "appearance"


@dataclass
class GaitMILConfig:
    widths: tuple[int, int, int, int] = PRESETS["edge"]
    parts: int = 16  # horizontal pyramid strips
    phases: int = DEFAULT_PHASES  # K
    pooling: str = "mil"  # "mil" | "max" | "mean"
    phase_features: str = "walk_residual"  # a key of PHASE_FEATURES
    attn_hidden: int = 128
    embed_dim: int = 256  # per-part FC output (ScoNet-MT: 256)
    num_classes: int = NUM_CLASSES
    logit_scale: float = 16.0
    preset: str = "edge"
    # rows of the input silhouettes (gaitcontract.spec.INPUT_RESOLUTIONS): 64 (x44, the Scoliosis1K
    # protocol) or 128 (x88). The phase lookup pools 4 * height / 64 pixels, so it keeps its
    # 176 features; HPP's strips are taller. Checkpoints without the key are 64.
    input_height: int = INPUT_HEIGHT
    # a classifier on the walk's lateral profile (gaitmil.lateral_profile) as one more "part",
    # weighted as all strips together: its logits join the part logits' mean and the per-part
    # CE. HPP keeps no sideways position. Old checkpoints have none.
    lateral_profile: bool = False
    # HPP pools each strip's left and right halves apart (2P parts). Pretreatment puts the body's
    # centre on the middle column, so a strip that sits sideways reads differently in its two
    # halves; plain HPP pools the whole width and keeps no sideways position. Old checkpoints:
    # off.
    hpp_sides: bool = False

    @property
    def pooled_parts(self) -> int:
        """Parts after HPP: the P strips, or their 2P halves with hpp_sides."""
        return self.parts * (2 if self.hpp_sides else 1)

    @property
    def input_width(self) -> int:
        return INPUT_RESOLUTIONS[self.input_height]

    @property
    def phase_pool(self) -> int:
        return PHASE_POOL * self.input_height // INPUT_HEIGHT

    def __post_init__(self) -> None:
        self.input_height = int(self.input_height)
        if self.input_height not in INPUT_RESOLUTIONS:
            raise ConfigError(
                f"input_height {self.input_height} is not in the model contract: use one of "
                + ", ".join(f"{h} ({h}x{w})" for h, w in INPUT_RESOLUTIONS.items())
            )
        self.widths = tuple(int(w) for w in self.widths)  # JSON gives lists
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ConfigError(f"widths must be 4 positive channel counts, got {self.widths}")
        require_choice("phase_features", self.phase_features, PHASE_FEATURES)
        require_choice("pooling", self.pooling, POOLINGS)
        # the encoder leaves 16 rows; HPP needs them to split evenly into parts
        rows = self.input_height // 4
        if self.parts < 1 or rows % self.parts:
            raise ConfigError(f"parts={self.parts} must divide the {rows} feature rows")
        for name in ("phases", "attn_hidden", "embed_dim", "num_classes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.logit_scale > 0:
            raise ConfigError(f"logit_scale must be positive, got {self.logit_scale!r}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> GaitMILConfig:
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset {name!r}: use one of {', '.join(PRESETS)}")
        return cls(**{"widths": PRESETS[name], "preset": name, **overrides})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GaitMILConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown model config keys {unknown}: expected some of {sorted(known)}"
            )
        d = {"phase_features": LEGACY_PHASE_FEATURES, **d}
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad model config {d}: {exc}") from exc


class GaitMILOutput(NamedTuple):
    logits: Tensor  # [B, 3] cosine logits * scale, averaged over parts
    probs: Tensor  # [B, 3] softmax(logits)
    phase_attention: Tensor  # [B, K] 0 for empty phases, sums to 1
    frame_attention: Tensor  # [B, T] intra * inter, sums to 1 over valid frames
    embeddings: Tensor  # [B, P, E] part embeddings before the BNNeck


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet9(nn.Module):
    """OpenGait's ResNet9 as ScoNet uses it: 3x3 stem, 1 block per stage,
    strides 1/2/2/1, no max-pool. [N, 1, 64, 44] -> [N, C4, 16, 11]."""

    def __init__(self, widths: tuple[int, int, int, int]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        cins = (widths[0],) + tuple(widths[:3])
        self.layers = nn.Sequential(
            *[BasicBlock(cin, cout, s) for cin, cout, s in zip(cins, widths, (1, 2, 2, 1))]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(x))


class GatedAttention(nn.Module):
    """Ilse et al. 2018: score = w^T (tanh(V h) * sigmoid(U h)), one per instance."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.V = nn.Linear(dim, hidden)
        self.U = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1, bias=False)  # a bias cancels in the softmax

    def forward(self, h: Tensor) -> Tensor:  # [..., C] -> [...]
        return self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))).squeeze(-1)


def hpp(fmap: Tensor, parts: int, sides: bool = False) -> Tensor:
    """Horizontal pyramid pooling, one level: [N, C, H, W] -> [N, P, C] (mean + max per strip).

    sides: [N, 2P, C], each strip's left half then its right half; with an odd width the
    centre column belongs to both."""
    n, c, h, w = fmap.shape
    if not sides:
        strips = fmap.reshape(n, c, parts, -1)
        return (strips.mean(-1) + strips.amax(-1)).transpose(1, 2)
    half = (w + 1) // 2
    rows = fmap.reshape(n, c, parts, h // parts, w)
    halves = [rows[..., :half], rows[..., w - half :]]  # [N, C, P, H/P, half] each
    pooled = [s.flatten(3).mean(-1) + s.flatten(3).amax(-1) for s in halves]  # [N, C, P] each
    return torch.stack(pooled, 3).reshape(n, c, 2 * parts).transpose(1, 2)


def l2_normalize(x: Tensor, dim: int = -1) -> Tensor:
    """x / |x| with a floor of 1e-4 on the norm: F.normalize's 1e-12 is 0 in float16,
    which turns an all-zero vector (e.g. a walk with no valid frame) into NaN."""
    return x / x.norm(dim=dim, keepdim=True).clamp(min=1e-4)


def masked_softmax(scores: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax over `dim` where mask is 1; exactly 0 where mask is 0, also when
    a whole slice is masked (then every entry is 0, never NaN)."""
    filled = scores.masked_fill(mask <= 0, MASK_FILL)
    return torch.softmax(filled, dim=dim) * mask


class GaitMIL(nn.Module):
    def __init__(self, config: GaitMILConfig):
        super().__init__()
        self.config = config
        c, p, e = config.widths[-1], config.pooled_parts, config.embed_dim
        self.encoder = ResNet9(config.widths)
        self.intra = GatedAttention(c, config.attn_hidden)
        self.inter = GatedAttention(c, config.attn_hidden)
        # ScoNet's SeparateFCs (one C->E matrix per part) and SeparateBNNecks, initialised as
        # OpenGait does: Xavier-uniform over the whole [parts, in, out] tensor (torch takes
        # fan_in = in * out, fan_out = parts * out for a 3-D tensor)
        self.fc = nn.Parameter(nn.init.xavier_uniform_(torch.empty(p, c, e)))
        self.bnneck = nn.BatchNorm1d(p * e)
        self.classifier = nn.Parameter(
            nn.init.xavier_uniform_(torch.empty(p, e, config.num_classes))
        )
        # K centroids of the phase features of 4x4-pooled silhouettes; set from k-means before training
        self.register_buffer("centroids", torch.zeros(config.phases, PHASE_DIM))
        self.phase_feature_fn = PHASE_FEATURES[config.phase_features]
        self.profile = (
            LateralProfileClassifier(config.input_height, config.num_classes)
            if config.lateral_profile
            else None
        )

    def set_centroids(self, centroids: Tensor | np.ndarray) -> None:
        t = torch.as_tensor(
            np.asarray(centroids, dtype=np.float32)
            if isinstance(centroids, np.ndarray)
            else centroids
        )
        expected = (self.config.phases, PHASE_DIM)
        if tuple(t.shape) != expected:
            raise ConfigError(
                f"centroids must have shape {expected} (phases x 16*11), got {tuple(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise ConfigError("centroids must be finite")
        self.centroids.copy_(t.to(self.centroids))

    # -- pieces -----------------------------------------------------------------

    def phase_pool(self, silhouettes: Tensor) -> Tensor:
        """Pooled silhouettes, flattened: [..., H, W] -> [..., 176] (per frame; 4x4 at 64x44)."""
        lead = silhouettes.shape[:-2]
        frames = 1
        for size in lead:  # an explicit count, not -1: the exported Reshape stays what it was
            frames = frames * size
        h, w = self.config.input_height, self.config.input_width
        # the pool scales with the resolution, so every resolution gives the same 176 features
        pooled = F.avg_pool2d(silhouettes.reshape(frames, 1, h, w), self.config.phase_pool)
        return pooled.reshape(*lead, PHASE_DIM)

    def assign_phases(self, silhouettes: Tensor, frame_mask: Tensor) -> Tensor:
        """One-hot phase of each valid frame [B, T, K]; all-zero rows for padded frames."""
        return self.assign_pooled(self.phase_pool(silhouettes), frame_mask)

    def assign_pooled(self, pooled: Tensor, frame_mask: Tensor) -> Tensor:
        """assign_phases from the per-frame pooled silhouettes [B, T, 176] (phase_pool)."""
        # explicit differences in fp32: elementwise ops, so autocast and FP16 runs cannot
        # move a frame to another phase through a low-precision matmul
        x = self.phase_feature_fn(pooled.float(), frame_mask)
        diff = x.unsqueeze(2) - self.centroids.float()  # [B, T, K, 176]
        dist = (diff * diff).sum(-1)  # [B, T, K]
        nearest = dist.argmin(-1, keepdim=True)  # [B, T, 1]
        phases = torch.arange(self.config.phases, device=pooled.device)
        onehot = (nearest == phases).to(pooled.dtype)  # Equal, not OneHot: plain for TensorRT
        return onehot * frame_mask.unsqueeze(-1).to(pooled.dtype)

    def pool_strips(self, fmap: Tensor) -> Tensor:
        """[N, C, H, W] feature maps -> [N, pooled_parts, C] (HPP as the config asks)."""
        return hpp(fmap, self.config.parts, self.config.hpp_sides)

    def frame_features(self, silhouettes: Tensor) -> Tensor:
        """The per-frame part of the MIL model: [N, 64, 44] -> part features [N, P, C].

        Each frame independently (backbone + horizontal pyramid pooling); in eval mode
        a frame's features do not depend on the other frames, so they can be computed
        while the walk is under way (export/split.py's encoder graph)."""
        n, h, w = silhouettes.shape
        return self.pool_strips(self.encoder(silhouettes.reshape(n, 1, h, w)))

    def frame_pooled(self, silhouettes: Tensor) -> Tensor:
        """What the walk head needs of each frame besides its part features: [N, H, W] ->
        [N, 176] pooled silhouette for the phase lookup, with a lateral profile followed by the
        frame's 2H row moments ([N, 176 + 2H]; gaitmil.lateral_profile.row_moments)."""
        pooled = self.phase_pool(silhouettes)
        if self.profile is None:
            return pooled
        return torch.cat([pooled, row_moments(silhouettes.float())], dim=-1)

    def walk_from_features(
        self, feats: Tensor, pooled: Tensor, frame_mask: Tensor | None = None
    ) -> GaitMILOutput:
        """The walk part of the MIL model: part features [B, T, P, C] and frame_pooled
        [B, T, 176 (+ 2H)] of the same frames -> the outputs of forward() on those frames
        (export/split.py's head graph). MIL pooling only."""
        if self.config.pooling != "mil":
            raise ConfigError(
                f"the walk head works on per-frame features: pooling {self.config.pooling!r} "
                "pools feature maps over time before HPP and has no per-frame split"
            )
        b, t = feats.shape[:2]
        if frame_mask is None:
            frame_mask = torch.ones(b, t, dtype=torch.bool, device=feats.device)
        assign = self.assign_pooled(pooled[..., :PHASE_DIM], frame_mask)
        walk, phase_attn, frame_attn = self.mil_pool(feats, assign)
        emb, part_logits = self.head(walk)
        if self.profile is not None:
            profile = self.profile.from_moments(pooled[..., PHASE_DIM:].float(), frame_mask)
            part_logits = self.join_profile(part_logits, profile)
        logits = part_logits.mean(1)
        return GaitMILOutput(logits, torch.softmax(logits, -1), phase_attn, frame_attn, emb)

    def join_profile(self, part_logits: Tensor, profile: Tensor) -> Tensor:
        """Part logits [B, P, classes] and the profile's [B, classes] -> [B, P + 1, classes].

        Weighted as all P parts together: one part among P + 1 would add a 17th of its logits
        to the walk's, and its own CE bounds them like any part's."""
        weighted = profile.to(part_logits.dtype) * self.config.pooled_parts
        return torch.cat([part_logits, weighted.unsqueeze(1)], 1)

    def encode(self, silhouettes: Tensor) -> Tensor:
        """[B, T, 64, 44] -> frame feature maps [B, T, C, 16, 11]."""
        b, t, h, w = silhouettes.shape
        fmap = self.encoder(silhouettes.reshape(b * t, 1, h, w))
        return fmap.reshape(b, t, *fmap.shape[1:])

    def mil_pool(self, feats: Tensor, assign: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """feats [B, T, P, C], assign [B, T, K] -> walk [B, P, C], phase attn [B, K], frame attn [B, T]."""
        b, t, p, c = feats.shape
        frame_vec = feats.mean(2)  # [B, T, C] one score per frame, shared by the parts
        scores = self.intra(frame_vec).unsqueeze(-1).expand_as(assign)  # [B, T, K]
        intra = masked_softmax(scores, assign, dim=1)  # over the frames of each phase
        flat = feats.reshape(b, t, p * c)
        phase_feats = intra.transpose(1, 2) @ flat  # [B, K, P*C]
        nonempty = assign.amax(1)  # [B, K] 1 where the phase has a frame
        phase_vec = phase_feats.reshape(b, -1, p, c).mean(2)  # [B, K, C]
        inter = masked_softmax(self.inter(phase_vec), nonempty, dim=1)  # [B, K]
        walk = (inter.unsqueeze(1) @ phase_feats).reshape(b, p, c)
        frame_attn = (intra @ inter.unsqueeze(-1)).squeeze(-1)  # [B, T]
        return walk, inter, frame_attn

    def temporal_pool(self, fmaps: Tensor, frame_mask: Tensor) -> Tensor:
        """ScoNet-MT baseline: temporal max (or mean) over valid frames, before HPP. -> [B, C, 16, 11]."""
        m = frame_mask.to(fmaps.dtype).reshape(*frame_mask.shape, 1, 1, 1)
        if self.config.pooling == "max":
            # a walk with no valid frame pools to 0, not to the fill (which overflows FP16 in the FCs)
            return fmaps.masked_fill(m <= 0, MASK_FILL).amax(1) * m.amax(1)
        return (fmaps * m).sum(1) / m.sum(1).clamp(min=1.0)

    def head(self, walk: Tensor) -> tuple[Tensor, Tensor]:
        """walk [B, P, C] -> embeddings [B, P, E], part logits [B, P, classes]."""
        b, p, _ = walk.shape
        emb = (walk.transpose(0, 1) @ self.fc).transpose(0, 1)  # [B, P, E]
        bn = self.bnneck(emb.reshape(b, -1)).reshape(b, p, -1)
        cos = l2_normalize(bn, -1).transpose(0, 1) @ l2_normalize(
            self.classifier, 1
        )  # [P, B, classes]
        return emb, cos.transpose(0, 1) * self.config.logit_scale

    # -- forward ----------------------------------------------------------------

    def forward_with_part_logits(
        self, silhouettes: Tensor, frame_mask: Tensor | None = None
    ) -> tuple[GaitMILOutput, Tensor]:
        """forward() plus the per-part logits [B, P, classes] the training loss needs."""
        b, t = silhouettes.shape[:2]
        if frame_mask is None:
            frame_mask = torch.ones(b, t, dtype=torch.bool, device=silhouettes.device)
        assign = self.assign_phases(silhouettes, frame_mask)  # [B, T, K], no gradient path
        fmaps = self.encode(silhouettes)  # [B, T, C, 16, 11]
        valid = frame_mask.to(fmaps.dtype)
        if self.config.pooling == "mil":
            feats = self.pool_strips(fmaps.flatten(0, 1)).reshape(
                b, t, self.config.pooled_parts, -1
            )
            walk, phase_attn, frame_attn = self.mil_pool(feats, assign)
        else:
            walk = self.pool_strips(self.temporal_pool(fmaps, frame_mask))
            nonempty = assign.amax(1)
            phase_attn = nonempty / nonempty.sum(1, keepdim=True).clamp(min=1.0)
            frame_attn = valid / valid.sum(1, keepdim=True).clamp(min=1.0)
        emb, part_logits = self.head(walk)
        if self.profile is not None:
            part_logits = self.join_profile(part_logits, self.profile(silhouettes, frame_mask))
        logits = part_logits.mean(1)
        out = GaitMILOutput(logits, torch.softmax(logits, -1), phase_attn, frame_attn, emb)
        return out, part_logits

    def forward(self, silhouettes: Tensor, frame_mask: Tensor | None = None) -> GaitMILOutput:
        """silhouettes [B, T, 64, 44] in [0, 1]; frame_mask [B, T] bool, True = real frame."""
        return self.forward_with_part_logits(silhouettes, frame_mask)[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
