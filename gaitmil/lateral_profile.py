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


def row_offsets(mean: Tensor) -> Tensor:
    """[B, H, W] -> [B, H]: each row's centre of mass minus the whole image's, in pixels.

    Rows with (almost) no silhouette give 0, not a centre of noise."""
    b, h, w = mean.shape
    cols = torch.arange(w, device=mean.device, dtype=mean.dtype)
    row_mass = mean.sum(-1)  # [B, H]
    row_moment = (mean * cols).sum(-1)
    centre = row_moment.sum(-1) / row_mass.sum(-1).clamp(min=1e-6)  # [B]
    row_centre = row_moment / row_mass.clamp(min=1e-6)
    present = (row_mass >= MIN_ROW_MASS).to(mean.dtype)
    return (row_centre - centre.unsqueeze(-1)) * present


def profile_features(offsets: Tensor) -> Tensor:
    """[B, H] -> [B, 2H]: |offset| and offset squared, the same for a curve to either side."""
    return torch.cat([offsets.abs(), offsets * offsets], dim=-1)


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
        mean = mean_silhouette(silhouettes.float(), frame_mask)  # [B, H, W]
        feats = profile_features(row_offsets(mean))  # [B, 2H]
        return self.linear(self.norm(feats))
