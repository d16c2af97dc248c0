"""Seeding and the (pickle-free) state of every random number generator a run uses."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (networks are initialised from torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(generator: torch.Generator) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """JSON data and tensors holding the global generators' and `generator`'s states."""
    version, mt_state, gauss = random.getstate()
    legacy = np.random.get_state(legacy=False)
    data = {
        "python": [version, list(mt_state), gauss],
        "numpy": {
            "key": legacy["state"]["key"].tolist(),
            "pos": int(legacy["state"]["pos"]),
            "has_gauss": int(legacy["has_gauss"]),
            "gauss": float(legacy["gauss"]),
        },
    }
    tensors = {"rng.torch": torch.get_rng_state(), "rng.generator": generator.get_state()}
    return data, tensors


def set_rng_state(data: dict[str, Any], tensors: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    version, mt_state, gauss = data["python"]
    random.setstate((version, tuple(mt_state), gauss))
    numpy = data["numpy"]
    np.random.set_state(
        ("MT19937", np.array(numpy["key"], dtype=np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
