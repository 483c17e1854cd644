"""The walk's lateral profile: where each row of the mean silhouette sits left or right of the
body's centre, and a small classifier on it (GaitMILConfig.lateral_profile).

Why: horizontal pyramid pooling averages and maxes each strip over its whole width, so the
network keeps what a strip looks like but not where it sits sideways. Scoliosis moves rows
sideways (the trunk shifted over the pelvis, the waist pushed toward the convex side, one
shoulder higher), by a pixel or less at 64 px height. A linear model on exactly this profile of
the kiosk-path mean silhouettes ranked the test walks better than the shipped network
(docs/MODEL.md, "The lateral profile"). Averaging over the walk's frames first turns the
sub-pixel offsets into measurable ones, as a gait energy image does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_ROW_MASS = 0.5  # a row with less silhouette than half a pixel has no centre worth reading


def mean_silhouette(silhouettes: Tensor, frame_mask: Tensor) -> Tensor:
    """[B, T, H, W] in [0, 1], frame_mask [B, T] -> the mean over valid frames [B, H, W]."""
    m = frame_mask.to(silhouettes.dtype).reshape(*frame_mask.shape, 1, 1)
    return (silhouettes * m).sum(1) / m.sum(1).clamp(min=1.0)


def row_moments(frames: Tensor) -> Tensor:
    """[N, H, W] in [0, 1] -> [N, 2H]: each row's mass (pixels of silhouette), then its first
    moment about column 0. Both are linear in the frame, so their mean over a walk's frames is
    the mean silhouette's: the streaming split carries them per frame (GaitMIL.frame_pooled)."""
    cols = torch.arange(frames.shape[-1], device=frames.device, dtype=frames.dtype)
    return torch.cat([frames.sum(-1), (frames * cols).sum(-1)], dim=-1)


def offsets_from_moments(moments: Tensor) -> Tensor:
    """[B, 2H] row masses and moments -> [B, H]: each row's centre of mass minus the whole
    image's, in pixels. Rows with (almost) no silhouette give 0, not a centre of noise."""
    height = moments.shape[-1] // 2
    row_mass, row_moment = moments[..., :height], moments[..., height:]
    centre = row_moment.sum(-1) / row_mass.sum(-1).clamp(min=1e-6)  # [B]
    row_centre = row_moment / row_mass.clamp(min=1e-6)
    present = (row_mass >= MIN_ROW_MASS).to(moments.dtype)
    return (row_centre - centre.unsqueeze(-1)) * present


def row_offsets(mean: Tensor) -> Tensor:
    """[B, H, W] -> [B, H]: offsets_from_moments of the image's rows."""
    return offsets_from_moments(row_moments(mean))


def profile_features(offsets: Tensor) -> Tensor:
    """[B, H] -> [B, 2H]: |offset| and offset squared, the same for a curve to either side."""
    return torch.cat([offsets.abs(), offsets * offsets], dim=-1)


def frame_moments(silhouettes: Tensor) -> Tensor:
    """[B, T, H, W] -> [B, T, 2H]: row_moments of every frame."""
    b, t, h, w = silhouettes.shape
    return row_moments(silhouettes.float().reshape(b * t, h, w)).reshape(b, t, 2 * h)


def walk_profile(moments: Tensor, frame_mask: Tensor) -> Tensor:
    """Per-frame row moments [B, T, 2H], frame_mask [B, T] -> the walk's profile features
    [B, 2H]: the moments' mean over the valid frames (the mean silhouette's), its row offsets,
    profile_features of them. What the branch scores, and what a fitted probe reads."""
    m = frame_mask.to(moments.dtype).unsqueeze(-1)  # [B, T, 1]
    mean = (moments * m).sum(1) / m.sum(1).clamp(min=1.0)  # [B, 2H]
    return profile_features(offsets_from_moments(mean))


class LateralProfileClassifier(nn.Module):
    """Silhouettes -> class logits [B, classes] from the walk's lateral profile.

    Batch norm standardises the profile (offsets are fractions of a pixel at the feet and
    whole pixels at the shoulders); one linear layer then scores it, the form that worked as a
    probe."""

    def __init__(self, height: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(2 * height)
        self.linear = nn.Linear(2 * height, num_classes)

    def forward(self, silhouettes: Tensor, frame_mask: Tensor) -> Tensor:
        """silhouettes [B, T, H, W], frame_mask [B, T] -> logits [B, classes]."""
        return self.from_moments(frame_moments(silhouettes), frame_mask)

    def from_moments(self, moments: Tensor, frame_mask: Tensor) -> Tensor:
        """Per-frame row moments [B, T, 2H] (row_moments) -> logits [B, classes]: their mean over
        the valid frames is the mean silhouette's (the streaming head's path)."""
        return self.linear(self.norm(walk_profile(moments, frame_mask)))
