"""`trpo export`: a run's deterministic policy as one standalone ONNX graph, checked against `Learner.predict`.

The graph takes raw observations [batch, *obs_shape] in the observation space's dtype and returns the
action `Learner.predict(obs, deterministic=True)` returns, for a whole batch:

    z = clip((obs - mean) / sqrt(var + eps), -clip_obs, clip_obs)   in float64, then float32 (frozen stats)
    P = head(features(z))                                           the actor (mean or logits)
    a = clip(P, low, high) (Box) | argmax P + start (Discrete) | per-dim argmax (MultiDiscrete) | P > 0 (MultiBinary)

It is written with PyTorch's `torch.export`-based ONNX exporter (the default one since PyTorch 2.9; the
TorchScript one is deprecated), with a dynamic batch axis, and verified with onnxruntime before it is
moved to its final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import torch
import tyro
from gymnasium import spaces
from torch import Tensor, nn

from trpo.core.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from trpo.errors import UserError

if TYPE_CHECKING:
    from trpo.algos.learner import Learner

TOLERANCE = 1e-5
INSTALL_HINT = "pip install 'trpo[export]'"


class ExportCheckFailed(Exception):
    """The exported graph does not compute what `Learner.predict` computes (a bug, not a user mistake)."""


@dataclasses.dataclass(frozen=True)
class ExportArgs:
    """Export the deterministic policy of a run directory as a standalone ONNX model."""

    run_dir: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="RUN_DIR")]
    """Run directory written by `trpo train` (or a saved model directory)."""
    format: Literal["onnx"] = "onnx"
    """Output format."""
    out: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """Output file (default: RUN_DIR/policy.onnx)."""
    samples: int = 1024
    """Number of random observations on which onnxruntime is checked against Learner.predict."""
    force: bool = False
    """Replace --out if it exists (a run's own files are never replaced)."""


class PolicyGraph(nn.Module):
    """Raw observation -> deterministic action, exactly as `Learner.predict(obs, deterministic=True)`."""

    obs_mean: Tensor  # buffers: constants of the graph
    obs_std: Tensor
    low: Tensor
    high: Tensor

    def __init__(self, agent: Learner) -> None:
        super().__init__()
        self.features, self.head = agent.rollout_actor.features, agent.rollout_actor.head
        self.dist = agent.dist
        normalizer = agent.obs_normalizer
        self.normalize = normalizer.enabled
        self.clip_obs = float(normalizer.clip)
        # predict computes in float64 with numpy: (obs - mean) / sqrt(var + eps); the same constants here
        self.register_buffer("obs_mean", torch.from_numpy(np.asarray(normalizer.rms.mean, dtype=np.float64)))
        std = np.sqrt(np.asarray(normalizer.rms.var, dtype=np.float64) + normalizer.eps)
        self.register_buffer("obs_std", torch.from_numpy(std))
        space = agent.action_space
        self.box = isinstance(space, spaces.Box)
        self.start = int(space.start) if isinstance(space, spaces.Discrete) else 0
        if isinstance(space, spaces.Box):
            self.register_buffer("low", torch.from_numpy(np.asarray(space.low, dtype=np.float32)))
            self.register_buffer("high", torch.from_numpy(np.asarray(space.high, dtype=np.float32)))
            self.action_dtype = torch.from_numpy(np.zeros(0, dtype=space.dtype)).dtype

    def forward(self, obs: Tensor) -> Tensor:
        flat = obs.reshape(obs.shape[0], -1)
        if self.normalize:
            z = (flat.to(torch.float64) - self.obs_mean) / self.obs_std
            flat = torch.clamp(z, -self.clip_obs, self.clip_obs)
        p = self.head(self.features(flat.to(torch.float32)))
        dist = self.dist
        if isinstance(dist, DiagGaussian):  # np.clip(a, low, high) = min(max(a, low), high)
            return torch.minimum(torch.maximum(p, self.low), self.high).to(self.action_dtype)
        if isinstance(dist, Categorical):
            return torch.argmax(p, dim=-1) + self.start
        if isinstance(dist, MultiCategorical):
            return torch.stack([torch.argmax(c, dim=-1) for c in torch.split(p, dist.nvec, dim=-1)], dim=-1)
        if isinstance(dist, Bernoulli):
            return (p > 0).to(torch.int64)
        raise UserError(f"cannot export a policy with action distribution {type(dist).__name__}")


def require_onnx() -> tuple[Any, Any]:
    """Import onnx and onnxruntime (and check onnxscript, which the exporter needs) or explain the extra."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UserError(f"trpo export --format onnx needs {exc.name}: {INSTALL_HINT}") from None
    return onnx, onnxruntime


def random_observations(agent: Learner, n: int, seed: int = 0) -> np.ndarray:
    """`n` observations to compare on: half sampled from the observation space, half from a wide normal
    (3 std around the normaliser's mean, or N(0, 3^2) without normalisation); all kept within the space
    and within 10 std of the centre, so that unbounded dimensions stay at realistic magnitudes."""
    space = agent.observation_space
    assert isinstance(space, spaces.Box)
    shape = tuple(space.shape)
    rng = np.random.default_rng(seed)
    normalizer = agent.obs_normalizer
    if normalizer.enabled:
        center = np.asarray(normalizer.rms.mean, dtype=np.float64).reshape(shape)
        scale = np.sqrt(np.asarray(normalizer.rms.var, dtype=np.float64)).reshape(shape)
    else:
        center, scale = np.zeros(shape), np.ones(shape)
    space.seed(seed)
    from_space = np.stack([space.sample() for _ in range(n // 2)]).astype(np.float64)
    wide = rng.normal(center, 3 * scale, size=(n - n // 2, *shape))
    obs = np.clip(np.concatenate([from_space, wide]), center - 10 * scale, center + 10 * scale)
    return np.clip(obs, space.low, space.high).astype(space.dtype)


def export_onnx(agent: Learner, path: Path) -> None:
    """Write the policy graph of `agent` to `path` (one self-contained file, dynamic batch axis)."""
    onnx, _ = require_onnx()
    space = agent.observation_space
    assert isinstance(space, spaces.Box)
    graph = PolicyGraph(agent).eval()
    example = torch.from_numpy(random_observations(agent, 4))
    batch = torch.export.Dim("batch", min=1)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, (example,), str(path), input_names=["obs"], output_names=["action"],
                dynamo=True, external_data=False, dynamic_shapes={"obs": {0: batch}}, verbose=False,
            )  # fmt: skip
    finally:
        onnx_logger.setLevel(level)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(
        model,
        {
            "producer": "trpo export",
            "env_id": str(agent.env_id),
            "env_spec": json.dumps(agent.env_spec.to_data() if agent.env_spec is not None else None),
            "observation_space": str(space),
            "action_space": str(agent.action_space),
            "num_steps": str(agent.num_steps),
        },
    )
    onnx.save(model, str(path))


def max_abs_diff(agent: Learner, path: Path, obs: np.ndarray) -> float:
    """max |onnxruntime(obs) - Learner.predict(obs)| over a batch of observations (inf on a shape mismatch)."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(["action"], {"obs": obs})
    expected = agent.predict(obs, deterministic=True)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)), initial=0.0))


def export_checked(agent: Learner, out: Path, samples: int = 1024) -> float:
    """Export to a temporary file beside `out`, check it on `samples` random observations, then move it
    to `out`; return the max abs difference. On a mismatch `out` is left as it was."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        export_onnx(agent, tmp)
        diff = max_abs_diff(agent, tmp, random_observations(agent, samples, seed=1))
        if not diff <= TOLERANCE:
            raise ExportCheckFailed(
                f"the exported graph differs from predict() by {diff:.3g} (> {TOLERANCE:g}) on random "
                f"observations; {out} was not written (please report this with the run's checkpoint)"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return diff
