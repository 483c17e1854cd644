"""The kiosk's model store: one folder per model id, one `active` pointer switched atomically.

Layout (STORE is `model.store` in the kiosk config, /var/lib/gaitmil-edge/models under systemd):

    STORE/<model id>/      the ONNX forms, manifests, card, calibration report, entry.json,
                           and the streaming split when the model has one (encoder*.onnx,
                           head.onnx, model.split.json: not forms, gated with the model)
    STORE/active.json      which id and form the kiosk runs, and the activation history
    STORE/.incoming/       half-copied installs; a kiosk killed mid-install leaves them here

Everything a reader sees is either the old state or the new one: a model folder appears by
one rename, and active.json is replaced by one rename, so a kill at any point leaves the
previously active model active and loadable. This package needs only the standard library
(install.sh runs it before the kiosk's own venv has the package); bundle signatures import
`cryptography` lazily.
"""

from __future__ import annotations

from edge.model_store.store import ActiveModel, ModelStore, StoreEntry

__all__ = ["ActiveModel", "ModelStore", "StoreEntry"]
