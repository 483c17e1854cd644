"""Tiny synthetic walks for the model tests: a stick figure whose legs swing
through a gait cycle (so the phases differ) and whose trunk tilts by class
(negative straight, neutral slightly, positive strongly). Not a gait model:
just a separable problem with the shapes of the real one."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np

from gaitcontract.spec import CLASSES

TILT_DEG = {0: 0.0, 1: 9.0, 2: 18.0}


def figure(label: int, phase: float, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One uint8 0/255 [64, 64] silhouette at gait phase in [0, 1)."""
    img = np.zeros((size, size), np.uint8)
    cx = 32 + rng.integers(-1, 2)
    hip = (cx, 36)
    tilt = np.deg2rad(TILT_DEG[label] * (1 if rng.random() < 0.5 else -1) + rng.normal(0, 1.5))
    shoulder = (int(round(cx + 24 * np.sin(tilt))), int(round(36 - 24 * np.cos(tilt))))
    cv2.line(img, hip, shoulder, 255, 7)
    cv2.circle(img, (shoulder[0], shoulder[1] - 5), 5, 255, -1)
    swing = 0.5 * np.sin(2 * np.pi * phase)
    for sign in (1, -1):
        foot = (int(round(cx + sign * 26 * np.sin(swing))), int(round(36 + 26 * np.cos(swing))))
        cv2.line(img, hip, foot, 255, 5)
    return img


def walk(label: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    start = rng.random()
    return np.stack([figure(label, (start + t / 15.0) % 1.0, rng) for t in range(frames)])


def write_dataset(
    root: Path,
    per_class_train: int = 4,
    per_class_test: int = 2,
    frames: int = 20,
    seed: int = 0,
    split_name: str = "118",
) -> Path:
    """OpenGait layout with one sequence per subject; returns root."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    sid = 0
    for label in range(len(CLASSES)):
        for subset, count in ((train, per_class_train), (test, per_class_test)):
            for _ in range(count):
                name = f"{sid:05d}"
                view = "000_180"
                d = root / name / CLASSES[label] / view
                d.mkdir(parents=True)
                with open(d / f"{view}.pkl", "wb") as fh:
                    pickle.dump(walk(label, frames, rng), fh)
                subset.append(name)
                sid += 1
    (root / f"Scoliosis1K_{split_name}.json").write_text(
        json.dumps({"TRAIN_SET": train, "TEST_SET": test})
    )
    return root
