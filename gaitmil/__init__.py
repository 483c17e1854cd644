"""Gait-MIL: the model contract, silhouette normalisation, network and training.

Importing this package must not import torch: `spec` and `silhouette` are
used by the kiosk, which runs without it.
"""

__version__ = "0.1.0"
