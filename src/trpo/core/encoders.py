"""Observations of any Gymnasium space as one stored row each, and the encoders that read those rows.

An `ObservationLayout` describes how a space's observations are stored in rollouts and batches: one row per
observation, so that batching, indexing, minibatches and transfers between processes see a plain tensor.

* A real-valued Box that is not an image (any shape): its flattened, normalised values, float32 (as before).
* An image (uint8 Box with bounds [0, 255]; `is_image_space`): its raw bytes, uint8 (4x smaller than float32).
* Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple of all the above: a row of leaves, in the space's key
  order. Rows hold uint8 when an image leaf is present (the float leaves are stored as their float32 bytes),
  float32 otherwise. Vector leaves are normalised (the running normaliser sees only them), pixels never.

An `ObservationEncoder` turns rows into features (SB3's MultiInputPolicy is the model): a CNN per image leaf
(pixels scaled to [0, 1] per forward pass), vector leaves as they are, Discrete / MultiDiscrete leaves one-hot,
MultiBinary leaves as 0/1; concatenated. A plain vector space needs none: the MLP reads the row directly.

Why this file is long (~400 lines): the observation layout and the encoders of every Gymnasium leaf space live
together because the layout's row format is what the encoders read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as nnf

from trpo.errors import ObservationError, UserError

LeafKind = Literal["image", "vector", "discrete", "multidiscrete", "binary"]
CNN_ARCHITECTURES = ("auto", "nature", "small")
NATURE_MIN_SIZE = 36
"""The Nature CNN's three convolutions need images of at least 36 x 36 pixels."""


def is_image_space(space: spaces.Space) -> bool:
    """A uint8 Box with every bound exactly [0, 255], of 2 (H, W) or 3 dimensions (H, W, C or C, H, W).

    The check is conservative: anything else (float images, other bounds) is a vector and is flattened.
    """
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) not in (2, 3):
        return False
    return bool(np.all(space.low == 0) and np.all(space.high == 255))


def image_channels_first(shape: tuple[int, ...]) -> bool:
    """Whether a 3-D image shape is (C, H, W): its first axis is the smallest one (a frame stack of 4
    84 x 84 frames is (4, 84, 84)); otherwise it is (H, W, C). A 2-D image has one channel, none stored."""
    return len(shape) == 3 and int(np.argmin(shape)) == 0


@dataclass(frozen=True)
class Leaf:
    """One part of an observation: where it sits in the structure and how it is stored and encoded."""

    key: str | int | None
    """Dict key, Tuple index, or None for a space that is one leaf."""
    kind: LeafKind
    shape: tuple[int, ...]
    """The shape of one observation of the leaf."""
    sizes: tuple[int, ...] = ()
    """discrete: (n,); multidiscrete: nvec (flattened)."""
    start: tuple[int, ...] = ()
    """discrete / multidiscrete: the space's start per component."""

    @property
    def size(self) -> int:
        """Values of the leaf per observation."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def chw(self) -> tuple[int, int, int]:
        """An image leaf's (channels, height, width)."""
        if len(self.shape) == 2:
            return (1, self.shape[0], self.shape[1])
        c, h, w = self.shape if image_channels_first(self.shape) else (self.shape[2], *self.shape[:2])
        return c, h, w

    @property
    def features(self) -> int:
        """Width of the leaf in the encoder's output before any CNN (one-hot widths for categorical leaves)."""
        if self.kind in ("discrete", "multidiscrete"):
            return sum(self.sizes)
        return self.size


def _leaf(key: str | int | None, space: spaces.Space) -> Leaf:
    if is_image_space(space):
        return Leaf(key, "image", tuple(space.shape))  # type: ignore[arg-type]
    if isinstance(space, spaces.Box):
        return Leaf(key, "vector", tuple(space.shape))
    if isinstance(space, spaces.Discrete):
        return Leaf(key, "discrete", (), (int(space.n),), (int(space.start),))
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec).reshape(-1)
        start = np.asarray(space.start).reshape(-1)
        return Leaf(key, "multidiscrete", tuple(space.shape), tuple(map(int, nvec)), tuple(map(int, start)))
    if isinstance(space, spaces.MultiBinary):
        return Leaf(key, "binary", tuple(np.atleast_1d(space.shape)))
    where = f" (key {key!r})" if key is not None else ""
    raise UserError(
        f"unsupported observation space {space}{where}: trpo takes Box (images included), Discrete, "
        "MultiDiscrete, MultiBinary, and Dict or Tuple of those; drop or convert the other parts with a wrapper "
        '(e.g. --wrapper \'gymnasium.wrappers:FilterObservation={"filter_keys": ["image"]}\', or '
        "minigrid.wrappers:ImgObsWrapper for MiniGrid)"
    )


class ObservationLayout:
    """How the observations of `space` are stored (one row each) and split back into leaves.

    Rows are laid out as: every image leaf's bytes, then the normalised vector leaves (`norm_dim` values),
    then the categorical and binary leaves (as numbers); the last two as float32 (bytes in a uint8 row).
    """

    def __init__(self, space: spaces.Space) -> None:
        self.space = space
        if isinstance(space, spaces.Dict):
            self.structure: Literal["single", "dict", "tuple"] = "dict"
            items: list[tuple[str | int | None, spaces.Space]] = list(space.spaces.items())
        elif isinstance(space, spaces.Tuple):
            self.structure = "tuple"
            items = list(enumerate(space.spaces))
        else:
            self.structure = "single"
            items = [(None, space)]
        for key, sub in items:
            if isinstance(sub, (spaces.Dict, spaces.Tuple)):
                raise UserError(
                    f"unsupported observation space {space}: the {type(sub).__name__} under key {key!r} is "
                    "nested; flatten it with a wrapper (e.g. --wrapper gymnasium.wrappers:FlattenObservation)"
                )
        self.leaves = [_leaf(key, sub) for key, sub in items]
        self.images = [leaf for leaf in self.leaves if leaf.kind == "image"]
        self.vectors = [leaf for leaf in self.leaves if leaf.kind == "vector"]
        self.others = [leaf for leaf in self.leaves if leaf.kind not in ("image", "vector")]
        self.flat = self.structure == "single" and self.leaves[0].kind == "vector"
        """A plain vector Box: rows are the normalised observation, no encoder (trpo's original path)."""
        self.norm_dim = sum(leaf.size for leaf in self.vectors)
        self.image_bytes = sum(leaf.size for leaf in self.images)
        self.float_dim = self.norm_dim + sum(leaf.size for leaf in self.others)
        self.storage_dtype = torch.uint8 if self.images else torch.float32
        self.row_size = self.image_bytes + 4 * self.float_dim if self.images else self.float_dim

    # ---------------------------------------------------------------- NumPy side (environments, normaliser)

    def parts(self, raw: Any) -> list[NDArray[Any]]:
        """The batched leaves [B, *leaf.shape] of a batch of raw observations, in layout order."""
        if self.structure == "single":
            return [np.asarray(raw)]
        return [np.asarray(raw[leaf.key]) for leaf in self.leaves]

    def vector_part(self, raw: Any) -> NDArray[Any]:
        """What the observation normaliser sees of a batch [B, norm_dim] (a plain Box: the batch as it is)."""
        if self.flat:
            return raw  # type: ignore[no-any-return,unused-ignore]
        parts = self.parts(raw)
        batch = len(parts[0])
        vectors = [p.reshape(batch, -1) for p, leaf in zip(parts, self.leaves, strict=True) if leaf.kind == "vector"]
        return np.concatenate(vectors, axis=1) if vectors else np.zeros((batch, 0), dtype=np.float32)

    def numeric_part(self, raw: Any) -> NDArray[Any]:
        """Every non-image value of a batch, [B, float_dim] (a plain Box: the batch): what must be finite."""
        if self.flat:
            return raw  # type: ignore[no-any-return,unused-ignore]
        parts = self.parts(raw)
        batch = len(parts[0])
        rest = [p.reshape(batch, -1) for p, leaf in zip(parts, self.leaves, strict=True) if leaf.kind != "image"]
        return np.concatenate(rest, axis=1) if rest else np.zeros((batch, 0), dtype=np.float32)

    def pack(self, raw: Any, normalize: Callable[[NDArray[Any]], NDArray[np.float32]]) -> NDArray[Any]:
        """Rows [B, row_size] (storage dtype) of a batch of raw observations; `normalize` maps the vector
        part [B, norm_dim] to its normalised float32 values."""
        if self.flat:
            return normalize(raw)
        parts = self.parts(raw)
        batch = len(parts[0])
        by_kind: dict[str, list[NDArray[Any]]] = {"image": [], "vector": [], "other": []}
        for part, leaf in zip(parts, self.leaves, strict=True):
            kind = leaf.kind if leaf.kind in ("image", "vector") else "other"
            flat = part.reshape(batch, -1)
            if leaf.kind in ("discrete", "multidiscrete"):
                flat = flat - np.asarray(leaf.start, dtype=np.int64)  # indices from 0
            by_kind[kind].append(flat)
        floats = [normalize(np.concatenate(by_kind["vector"], axis=1))] if self.vectors else []
        floats += [p.astype(np.float32) for p in by_kind["other"]]
        values = np.concatenate(floats, axis=1).astype(np.float32) if floats else np.zeros((batch, 0), np.float32)
        if not self.images:
            return values
        pixels = [p.astype(np.uint8, copy=False) for p in by_kind["image"]]
        return np.concatenate([*pixels, np.ascontiguousarray(values).view(np.uint8)], axis=1)

    def stack(self, observations: Sequence[Any]) -> Any:
        """A batch of raw observations from single ones (e.g. the final observations of some envs)."""
        if self.structure == "single":
            return np.stack([np.asarray(o) for o in observations])
        stacked = {leaf.key: np.stack([np.asarray(o[leaf.key]) for o in observations]) for leaf in self.leaves}
        return stacked if self.structure == "dict" else tuple(stacked[i] for i in range(len(self.leaves)))

    def to_tensors(self, raw: Any, prefix: str) -> dict[str, Tensor]:
        """A batch of raw observations as named tensors (checkpoints: no pickle)."""
        if self.structure == "single":
            return {prefix: torch.from_numpy(np.array(raw))}
        parts = zip(self.leaves, self.parts(raw), strict=True)
        return {f"{prefix}.{leaf.key}": torch.from_numpy(np.array(p)) for leaf, p in parts}

    def from_tensors(self, tensors: Mapping[str, Tensor], prefix: str) -> Any:
        """The inverse of `to_tensors`."""
        if self.structure == "single":
            return tensors[prefix].numpy().copy()
        return self.stack_parts([tensors[f"{prefix}.{leaf.key}"].numpy().copy() for leaf in self.leaves])

    def stack_parts(self, parts: Sequence[NDArray[Any]]) -> Any:
        """A raw batch from its leaves (layout order)."""
        if self.structure == "single":
            return parts[0]
        if self.structure == "dict":
            return {leaf.key: p for leaf, p in zip(self.leaves, parts, strict=True)}
        return tuple(parts)

    def checked(self, obs: Any) -> tuple[Any, bool]:
        """A Dict/Tuple observation for `predict`: one observation (each leaf of its space's shape) or a batch
        (each with the same leading axis); returns it batched and whether it was one. ObservationError otherwise."""
        if self.structure == "dict" and not isinstance(obs, Mapping):
            raise ObservationError(
                f"predict() needs a dict observation with keys {self.keys}, got {type(obs).__name__}"
            )
        if self.structure == "tuple" and not isinstance(obs, (tuple, list)):
            raise ObservationError(
                f"predict() needs a tuple observation of {len(self.leaves)} parts, got {type(obs).__name__}"
            )
        if self.structure == "dict":
            assert isinstance(obs, Mapping)
            missing = [k for k in self.keys if k not in obs]
            if missing:
                raise ObservationError(
                    f"predict() got a dict observation without the key(s) {missing}; expected {self.keys}"
                )
        elif len(obs) != len(self.leaves):
            raise ObservationError(f"predict() got a tuple of {len(obs)} parts; the space has {len(self.leaves)}")
        parts, singles, batch = [], set(), set()
        for leaf in self.leaves:
            try:
                value = np.asarray(obs[leaf.key])
            except (TypeError, ValueError) as exc:
                raise ObservationError(f"predict(): observation key {leaf.key!r} is not an array: {exc}") from None
            if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
                raise ObservationError(f"predict(): observation key {leaf.key!r} has dtype {value.dtype}, not numbers")
            if value.shape == leaf.shape:
                singles.add(True)
                value = value[None]
            elif value.ndim == len(leaf.shape) + 1 and value.shape[1:] == leaf.shape and value.shape[0] > 0:
                singles.add(False)
                batch.add(value.shape[0])
            else:
                raise ObservationError(
                    f"predict(): observation key {leaf.key!r} has shape {value.shape}; its space takes {leaf.shape} "
                    f"(one observation) or (N, {', '.join(map(str, leaf.shape))}) (a batch)"
                )
            parts.append(value)
        if len(singles) > 1 or len(batch) > 1:
            raise ObservationError("predict(): the observation's keys mix single values and batches (or batch sizes)")
        return self.stack_parts(parts), singles == {True}

    @property
    def keys(self) -> list[str | int | None]:
        return [leaf.key for leaf in self.leaves]

    # ---------------------------------------------------------------- torch side (networks)

    def unpack(self, rows: Tensor) -> list[Tensor]:
        """Rows [B, row_size] split into leaves, in layout order: images uint8 [B, C, H, W], vector leaves
        float [B, size], discrete indices [B, 1], multidiscrete indices [B, k], binary [B, n]."""
        batch = rows.shape[0]
        floats = rows
        if self.images:  # float leaves stored as float32 bytes after the pixels (a copy, so aligned for the view)
            tail = rows[:, self.image_bytes :]
            floats = (
                tail.clone(memory_format=torch.contiguous_format).view(torch.float32)
                if self.float_dim
                else torch.zeros((batch, 0), dtype=torch.float32)
            )
        out: dict[int, Tensor] = {}
        byte, value = 0, 0
        order = [*self.images, *self.vectors, *self.others]
        for leaf in order:
            i = self.leaves.index(leaf)
            if leaf.kind == "image":
                out[i] = channels_first(rows[:, byte : byte + leaf.size].reshape(batch, *leaf.shape), leaf)
                byte += leaf.size
            else:
                out[i] = floats[:, value : value + leaf.size]
                value += leaf.size
        return [out[i] for i in range(len(self.leaves))]


def channels_first(pixels: Tensor, leaf: Leaf) -> Tensor:
    """A batch of an image leaf's observations [B, *leaf.shape] as [B, C, H, W]."""
    if len(leaf.shape) == 2:
        return pixels.unsqueeze(1)
    return pixels if image_channels_first(leaf.shape) else pixels.permute(0, 3, 1, 2)


# ---------------------------------------------------------------- CNNs


def nature_cnn(channels: int) -> nn.Sequential:
    """Mnih et al. 2015: 32 8x8/4, 64 4x4/2, 64 3x3/1 convolutions with ReLU, flattened (the linear layer follows)."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
        nn.Flatten(),
    )  # fmt: skip


def small_cnn(channels: int) -> nn.Sequential:
    """For small images (fewer than 36 pixels a side, e.g. MiniGrid's 7 x 7): 16, 32, 32 3x3 convolutions
    with padding 1, strides 1, 2, 2 (a 16 x 16 image becomes 4 x 4)."""
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
    )  # fmt: skip


def cnn_architecture(name: str, height: int, width: int) -> str:
    """`auto` is the Nature CNN for images of at least 36 x 36 pixels, the small CNN below that."""
    if name == "auto":
        return "nature" if min(height, width) >= NATURE_MIN_SIZE else "small"
    if name == "nature" and min(height, width) < NATURE_MIN_SIZE:
        raise UserError(
            f"cnn=nature needs images of at least {NATURE_MIN_SIZE} x {NATURE_MIN_SIZE} pixels (got {height} x "
            f"{width}); use cnn=small or cnn=auto"
        )
    return name


class ImageEncoder(nn.Module):
    """pixels (uint8 [B, C, H, W]) -> ReLU(Linear(conv(pixels / 255))), [B, features_dim]."""

    def __init__(self, leaf: Leaf, architecture: str, features_dim: int, ortho_init: bool) -> None:
        super().__init__()
        c, h, w = leaf.chw
        make = {"nature": nature_cnn, "small": small_cnn}[cnn_architecture(architecture, h, w)]
        self.conv = make(c)
        with torch.no_grad():
            n_flat = int(self.conv(torch.zeros(1, c, h, w)).shape[1])
        self.linear = nn.Linear(n_flat, features_dim)
        if ortho_init:
            for layer in [*self.conv, self.linear]:
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is not None:
                    nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
                    nn.init.zeros_(layer.bias)

    def forward(self, pixels: Tensor) -> Tensor:
        x = pixels.to(self.linear.weight.dtype) / 255.0
        return torch.relu(self.linear(self.conv(x)))


class ObservationEncoder(nn.Module):
    """Rows of an `ObservationLayout` -> features: a CNN per image leaf, vector leaves as stored (normalised),
    one-hot Discrete / MultiDiscrete leaves, 0/1 MultiBinary leaves; concatenated in layout order."""

    def __init__(self, layout: ObservationLayout, cnn: str, features_dim: int, ortho_init: bool) -> None:
        super().__init__()
        self.layout = layout
        self.cnns = nn.ModuleList([ImageEncoder(leaf, cnn, features_dim, ortho_init) for leaf in layout.images])
        self.out_dim = sum(features_dim if leaf.kind == "image" else leaf.features for leaf in layout.leaves)

    def forward(self, rows: Tensor) -> Tensor:
        return self.encode(self.layout.unpack(rows))

    def encode(self, parts: Sequence[Tensor]) -> Tensor:
        """Features of the leaves (in layout order, as `ObservationLayout.unpack` gives them)."""
        dtype = next((p.dtype for p in parts if p.is_floating_point()), torch.float32)
        for cnn in self.cnns:
            assert isinstance(cnn, ImageEncoder)
            dtype = cnn.linear.weight.dtype
        features: list[Tensor] = []
        cnns = iter(self.cnns)
        for part, leaf in zip(parts, self.layout.leaves, strict=True):
            batch = part.shape[0]
            if leaf.kind == "image":
                features.append(next(cnns)(part))
            elif leaf.kind in ("discrete", "multidiscrete"):
                index = part.reshape(batch, -1).long()
                features += [nnf.one_hot(index[:, j], n).to(dtype) for j, n in enumerate(leaf.sizes)]
            else:
                features.append(part.reshape(batch, -1).to(dtype))
        return torch.cat(features, dim=1)


def make_encoder(layout: ObservationLayout, cnn: str, features_dim: int, ortho_init: bool) -> ObservationEncoder | None:
    """The encoder of a layout; None for a plain vector observation (the MLP reads its rows directly)."""
    if cnn not in CNN_ARCHITECTURES:
        raise UserError(f"cnn must be one of {', '.join(CNN_ARCHITECTURES)} (got {cnn!r})")
    return None if layout.flat else ObservationEncoder(layout, cnn, features_dim, ortho_init)
