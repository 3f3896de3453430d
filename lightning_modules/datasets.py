"""Datasets the training workers read: tokenized arrays written by lam_platform.training_data."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ArrayDataset:
    """A map-style dataset over an npz file: item i is {name: array[i]} (torch's default collate stacks)."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self.arrays = {k: data[k] for k in data.files}
        self.length = len(next(iter(self.arrays.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i] for k, v in self.arrays.items()}
