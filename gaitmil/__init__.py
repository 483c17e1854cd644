"""Gait-MIL: the network, its training, evaluation and model card.

The contract the kiosk and the central server share (model input spec, silhouette
normalisation, manifests, version) is `gaitcontract`; this package is the torch side.
Importing it must not import torch.
"""
