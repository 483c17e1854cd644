"""The release gate's check set: held-out walks and the FP32 model's answers on them, one .npz.

`python -m export bundle` writes it into every bundle; the kiosk's release gate replays it
through its own runner and precision before a form becomes active. The walks are stored as
uint8 silhouettes (0..255: what the streaming encoder reads); the reference is the FP32
model's P(not negative) on the walks as read back from uint8, so the stored rounding is not
counted against the candidate. numpy is imported only when a check set is made or read: the
kiosk's model store runs before its venv exists (systemd/install.sh).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CHECKSET_NAME = "checkset.npz"
SILHOUETTES = "silhouettes"  # uint8 [N, T, H, W]
REFERENCE = "reference_p_not_negative"  # float64 [N]


def p_not_negative(probs: np.ndarray) -> np.ndarray:
    """P(not negative) = 1 - P(negative), over the last axis of the model's `probs`."""
    from gaitcontract.spec import NEGATIVE

    return 1.0 - probs[..., NEGATIVE]


def stored_walks(walks: np.ndarray) -> np.ndarray:
    """Walks [N, T, H, W] in [0, 1] as the check set stores them: uint8, 0..255."""
    import numpy as np

    return np.clip(np.rint(np.asarray(walks, np.float32) * 255.0), 0, 255).astype(np.uint8)


def read_back(stored: np.ndarray) -> np.ndarray:
    """Stored uint8 walks as the models take them: float32 in [0, 1]."""
    import numpy as np

    return stored.astype(np.float32) / 255.0


def write_checkset(path: Path, stored: np.ndarray, reference: np.ndarray) -> None:
    """One check set file: `stored` walks (from stored_walks) and the FP32 reference on them."""
    import numpy as np

    arrays: dict[str, Any] = {SILHOUETTES: stored, REFERENCE: reference}  # keywords: array names
    np.savez_compressed(path, **arrays)


def read_checkset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(stored uint8 walks, reference P(not negative) as float64) of a check set file."""
    import numpy as np

    with np.load(path) as data:
        return data[SILHOUETTES], data[REFERENCE].astype(np.float64)
