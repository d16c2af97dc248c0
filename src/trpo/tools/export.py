"""`trpo export`: a run's deterministic policy as one standalone ONNX graph, checked against `Learner.predict`.

The graph takes raw observations [batch, *obs_shape] in the observation space's dtype (one input per key of a
Dict / Tuple observation, images as uint8; plus an `action_mask` input when the environment declares legal
actions) and returns the action `Learner.predict(obs, deterministic=True)` returns, for a whole batch:

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

from trpo.core.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical, mask_sizes, masked_logits
from trpo.core.encoders import channels_first
from trpo.errors import UserError
from trpo.sampling.contract import action_mask

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
    """Raw observation -> deterministic action, exactly as `Learner.predict(obs, deterministic=True)`.

    Its inputs, in order (`input_names`): the observation ("obs"), or one per key of a Dict / Tuple
    observation ("obs.<key>", in the space's order, each in its own dtype); then, for an environment with
    action masks, "action_mask" (bool [batch, n]): illegal actions are never chosen, as in predict.
    """

    obs_mean: Tensor  # buffers: constants of the graph
    obs_std: Tensor
    low: Tensor
    high: Tensor

    def __init__(self, agent: Learner, masked: bool = False) -> None:
        super().__init__()
        self.layout = agent.layout
        self.encoder = agent.rollout_actor.encoder
        self.features, self.head = agent.rollout_actor.features, agent.rollout_actor.head
        self.dist = agent.dist
        self.masked = masked
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

    @property
    def input_names(self) -> list[str]:
        names = ["obs"] if self.layout.structure == "single" else [f"obs.{key}" for key in self.layout.keys]
        return [*names, "action_mask"] if self.masked else names

    def _normalized(self, flat: Tensor, offset: int) -> Tensor:
        """Vector values [B, k] normalised with the statistics of entries offset .. offset + k."""
        if not self.normalize:
            return flat.to(torch.float32)
        k = flat.shape[1]
        z = (flat.to(torch.float64) - self.obs_mean[offset : offset + k]) / self.obs_std[offset : offset + k]
        return torch.clamp(z, -self.clip_obs, self.clip_obs).to(torch.float32)

    def _encoded(self, leaves: tuple[Tensor, ...]) -> Tensor:
        """What the actor's MLP reads, from the raw inputs (as `ObservationLayout.pack` + the encoder)."""
        if self.layout.flat:
            (obs,) = leaves
            return self._normalized(obs.reshape(obs.shape[0], -1), 0)
        assert self.encoder is not None
        parts, offset = [], 0
        for leaf, x in zip(self.layout.leaves, leaves, strict=True):
            batch = x.shape[0]
            if leaf.kind == "image":
                parts.append(channels_first(x, leaf))
            elif leaf.kind == "vector":
                parts.append(self._normalized(x.reshape(batch, -1), offset))
                offset += leaf.size
            elif leaf.kind in ("discrete", "multidiscrete"):
                start = torch.tensor(leaf.start, dtype=torch.int64)
                parts.append(x.reshape(batch, -1).to(torch.int64) - start)
            else:
                parts.append(x.reshape(batch, -1).to(torch.float32))
        return self.encoder.encode(parts)

    def forward(self, *inputs: Tensor) -> Tensor:
        leaves, mask = (inputs[:-1], inputs[-1]) if self.masked else (inputs, None)
        p = self.head(self.features(self._encoded(leaves)))
        if mask is not None:
            p = masked_logits(p, mask)
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


def env_has_action_masks(agent: Learner) -> bool:
    """Whether the agent's environment declares legal actions (then the graph takes an action_mask input)."""
    if mask_sizes(agent.dist) is None:
        return False
    try:
        env = agent.env_fn()
    except Exception:  # an environment that cannot be rebuilt here: exported without masks
        return False
    try:
        _, info = env.reset(seed=0)
        return action_mask(env, info) is not None
    finally:
        env.close()


def random_masks(agent: Learner, n: int, seed: int = 0) -> np.ndarray:
    """`n` random action masks with at least one legal action per categorical."""
    sizes = mask_sizes(agent.dist)
    assert sizes is not None
    rng = np.random.default_rng(seed)
    masks = rng.random((n, sum(sizes))) < 0.5
    offset = 0
    for k in sizes:
        masks[np.arange(n), offset + rng.integers(0, k, n)] = True
        offset += k
    return masks


def inputs_of(agent: Learner, obs: Any, masks: np.ndarray | None) -> list[np.ndarray]:
    """The graph's inputs, in `PolicyGraph.input_names` order, for a batch of raw observations."""
    arrays = [np.asarray(obs)] if agent.layout.structure == "single" else agent.layout.parts(obs)
    return [*arrays, masks] if masks is not None else arrays


def require_onnx() -> tuple[Any, Any]:
    """Import onnx and onnxruntime (and check onnxscript, which the exporter needs) or explain the extra."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UserError(f"trpo export --format onnx needs {exc.name}: {INSTALL_HINT}") from None
    return onnx, onnxruntime


def random_observations(agent: Learner, n: int, seed: int = 0) -> Any:
    """`n` observations to compare on: half sampled from the observation space, half from a wide normal
    (3 std around the normaliser's mean, or N(0, 3^2) without normalisation); all kept within the space
    and within 10 std of the centre, so that unbounded dimensions stay at realistic magnitudes. Other spaces
    (images, Dict, Tuple, Discrete): a batch of samples of the space, in its structure."""
    space = agent.observation_space
    if not agent.layout.flat:  # images, Dict, Tuple, Discrete: samples of the space (raw values, not normalised)
        space.seed(seed)
        return agent.layout.stack([space.sample() for _ in range(n)])
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
    masked = env_has_action_masks(agent)
    graph = PolicyGraph(agent, masked).eval()
    masks = random_masks(agent, 4) if masked else None
    example = tuple(
        torch.from_numpy(np.ascontiguousarray(a)) for a in inputs_of(agent, random_observations(agent, 4), masks)
    )
    batch = torch.export.Dim("batch", min=1)
    dynamic = {"inputs": tuple({0: batch} for _ in example)}  # every input has the batch axis first
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, example, str(path), input_names=graph.input_names, output_names=["action"],
                dynamo=True, external_data=False, dynamic_shapes=dynamic, verbose=False,
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


def max_abs_diff(agent: Learner, path: Path, obs: Any, masks: np.ndarray | None = None) -> float:
    """max |onnxruntime(obs) - Learner.predict(obs)| over a batch of observations (inf on a shape mismatch);
    `masks`: the action masks of a graph with an action_mask input."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (got,) = session.run(["action"], dict(zip(names, inputs_of(agent, obs, masks), strict=True)))
    expected = agent.predict(obs, deterministic=True, action_masks=masks)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)), initial=0.0))


def export_checked(agent: Learner, out: Path, samples: int = 1024) -> float:
    """Export to a temporary file beside `out`, check it on `samples` random observations, then move it
    to `out`; return the max abs difference. On a mismatch `out` is left as it was."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        export_onnx(agent, tmp)
        masks = random_masks(agent, samples, seed=1) if env_has_action_masks(agent) else None
        diff = max_abs_diff(agent, tmp, random_observations(agent, samples, seed=1), masks)
        if not diff <= TOLERANCE:
            raise ExportCheckFailed(
                f"the exported graph differs from predict() by {diff:.3g} (> {TOLERANCE:g}) on random "
                f"observations; {out} was not written (please report this with the run's checkpoint)"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return diff
