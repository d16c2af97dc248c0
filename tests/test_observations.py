"""Observations of every kind (images through a CNN, Dict/Tuple/Discrete leaves) and action masks: the
layout and encoders, exact Fisher-vector products against explicit Hessians, the line-search invariant on
image and masked batches, predict's checks, save/load, and learning on made environments."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from conftest import explicit_kl_hessian
from obs_envs import DictMode, MaskedChoice, MaskedChoiceInfo, PixelSide
from trpo import TRPO, TRPOConfig
from trpo.algos.learner import PolicyBatch
from trpo.core.distributions import MASKED_LOGIT, Categorical, Distribution, MultiCategorical, masked_logits
from trpo.core.encoders import (
    ImageEncoder,
    ObservationEncoder,
    ObservationLayout,
    image_channels_first,
    is_image_space,
)
from trpo.core.networks import Actor
from trpo.core.trust_region import analytic_fvp, detached_params, double_backprop_fvp
from trpo.errors import ObservationError

DICT_SPACE = spaces.Dict(
    {
        "image": spaces.Box(0, 255, (6, 6, 2), np.uint8),
        "pos": spaces.Box(-1.0, 1.0, (3,), np.float32),
        "dir": spaces.Discrete(4, start=1),
        "keys": spaces.MultiDiscrete([2, 3]),
        "flags": spaces.MultiBinary(2),
    }
)


# ---------------------------------------------------------------- detecting images, storing rows


def test_image_spaces_are_uint8_boxes_bounded_0_255() -> None:
    assert is_image_space(spaces.Box(0, 255, (84, 84, 3), np.uint8))
    assert is_image_space(spaces.Box(0, 255, (4, 84, 84), np.uint8))
    assert is_image_space(spaces.Box(0, 255, (84, 84), np.uint8))
    assert not is_image_space(spaces.Box(0, 1, (84, 84, 3), np.float32))  # float frames are vectors
    assert not is_image_space(spaces.Box(0, 10, (7, 7, 3), np.uint8))  # other bounds: not pixels
    assert not is_image_space(spaces.Box(0, 255, (5,), np.uint8))
    assert image_channels_first((4, 84, 84)) and not image_channels_first((84, 84, 3))


def test_images_are_stored_as_uint8_and_unpacked_channels_first() -> None:
    layout = ObservationLayout(spaces.Box(0, 255, (5, 4, 3), np.uint8))
    assert layout.storage_dtype == torch.uint8 and layout.row_size == 60 and layout.norm_dim == 0
    raw = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    rows = layout.pack(raw, lambda v: v.astype(np.float32))
    assert rows.dtype == np.uint8 and rows.shape == (2, 60)
    (pixels,) = layout.unpack(torch.from_numpy(rows))
    assert pixels.shape == (2, 3, 5, 4) and torch.equal(pixels, torch.from_numpy(raw).permute(0, 3, 1, 2))


def test_dict_rows_round_trip_every_leaf() -> None:
    layout = ObservationLayout(DICT_SPACE)
    assert layout.storage_dtype == torch.uint8 and layout.norm_dim == 3
    DICT_SPACE.seed(0)
    raw = layout.stack([DICT_SPACE.sample() for _ in range(5)])
    rows = layout.pack(raw, lambda v: (2 * v).astype(np.float32))  # a visible "normalisation"
    parts = dict(zip(layout.keys, layout.unpack(torch.from_numpy(rows)), strict=True))
    assert torch.equal(parts["image"], torch.from_numpy(raw["image"]).permute(0, 3, 1, 2))
    np.testing.assert_allclose(parts["pos"].numpy(), 2 * raw["pos"], rtol=1e-6)
    np.testing.assert_array_equal(parts["dir"].numpy()[:, 0], raw["dir"] - 1)  # indices from 0
    np.testing.assert_array_equal(parts["keys"].numpy(), raw["keys"])
    np.testing.assert_array_equal(parts["flags"].numpy(), raw["flags"])
    encoder = ObservationEncoder(layout, "small", 8, True)
    features = encoder(torch.from_numpy(rows))
    assert features.shape == (5, 8 + 3 + 4 + 5 + 2)
    assert layout.keys == ["dir", "flags", "image", "keys", "pos"]  # Gymnasium's Dict sorts its keys
    one_hot = features[:, :4]  # the Discrete leaf comes first
    np.testing.assert_array_equal(one_hot.argmax(1).numpy(), raw["dir"] - 1)


def test_unsupported_and_nested_spaces_are_refused_with_the_fix() -> None:
    from trpo.errors import UserError

    with pytest.raises(UserError, match="ImgObsWrapper"):
        ObservationLayout(spaces.Dict({"image": spaces.Box(0, 255, (7, 7, 3), np.uint8), "mission": spaces.Text(8)}))
    with pytest.raises(UserError, match="nested"):
        ObservationLayout(spaces.Dict({"a": spaces.Dict({"b": spaces.Discrete(2)})}))


# ---------------------------------------------------------------- masks


def test_masked_actions_have_zero_probability_everywhere() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    mask = torch.rand(64, 5, generator=gen) < 0.5
    mask[:, 0] = True
    dist = Categorical(5)
    p = masked_logits(logits, mask)
    assert float(torch.softmax(p, -1)[~mask].abs().max()) == 0.0
    samples = torch.stack([dist.sample(p, gen) for _ in range(50)])
    assert bool(mask.gather(1, samples.T).all())
    assert bool(mask.gather(1, dist.mode(p)[:, None]).all())
    # entropy and KL equal those of the distributions renormalised over the legal actions
    legal = torch.where(mask, logits, torch.tensor(-math.inf, dtype=torch.float64))
    q = torch.softmax(legal, -1)
    entropy = -(q * torch.log(q.clamp_min(1e-300))).sum(-1)
    torch.testing.assert_close(dist.entropy(p), entropy)
    other = masked_logits(torch.randn(64, 5, generator=gen, dtype=torch.float64), mask)
    log_q2 = torch.log_softmax(torch.where(mask, other, torch.tensor(-math.inf, dtype=torch.float64)), -1)
    kl = (q * (torch.log(q.clamp_min(1e-300)) - log_q2.clamp_min(-1e300))).where(mask, 0.0).sum(-1)
    torch.testing.assert_close(dist.kl(p, other), kl)
    assert bool(torch.isfinite(dist.log_prob(p, dist.mode(p))).all())
    # the Fisher metric's rows and columns of illegal actions are 0
    u = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    assert float(dist.fisher_product(p, u)[~mask].abs().max()) == 0.0
    assert MASKED_LOGIT < -1e7


# ---------------------------------------------------------------- exact FVPs against explicit Hessians


def tiny_cnns(encoder: ObservationEncoder) -> ObservationEncoder:
    """The encoder with each image CNN cut down to one 2-channel 3x3/2 convolution and a 3-wide linear
    layer (on 6 x 6 images: about 70 parameters), so that explicit Hessians stay small."""
    for cnn in encoder.cnns:
        assert isinstance(cnn, ImageEncoder)
        cnn.conv = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten())
        cnn.linear = torch.nn.Linear(8, 3)
    encoder.out_dim = sum(3 if leaf.kind == "image" else leaf.features for leaf in encoder.layout.leaves)
    return encoder


def cnn_actor(dist: Distribution) -> tuple[Actor, torch.Tensor]:
    """A tiny CNN policy on 6 x 6 x 2 images (float64) and a batch of 7 stored image rows."""
    torch.manual_seed(0)
    layout = ObservationLayout(spaces.Box(0, 255, (6, 6, 2), np.uint8))
    encoder = tiny_cnns(ObservationEncoder(layout, "small", 3, False))
    actor = Actor(encoder.out_dim, dist, (5,), "tanh", ortho_init=False, encoder=encoder).double()
    raw = np.random.default_rng(1).integers(0, 256, (7, 6, 6, 2), dtype=np.uint8)
    return actor, torch.from_numpy(layout.pack(raw, lambda v: v))


def dict_actor(dist: Distribution) -> tuple[Actor, torch.Tensor]:
    """A Dict policy (image, vector, Discrete, MultiDiscrete, MultiBinary leaves; float64) and 7 stored rows."""
    torch.manual_seed(0)
    layout = ObservationLayout(DICT_SPACE)
    encoder = tiny_cnns(ObservationEncoder(layout, "small", 3, False))
    actor = Actor(encoder.out_dim, dist, (4,), "tanh", ortho_init=False, encoder=encoder).double()
    DICT_SPACE.seed(1)
    raw = layout.stack([DICT_SPACE.sample() for _ in range(7)])
    return actor, torch.from_numpy(layout.pack(raw, lambda v: v.astype(np.float32)))


def masked_actor(dist: Distribution) -> tuple[Actor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    actor = Actor(4, dist, (5,), "tanh", ortho_init=False).double()
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    mask = torch.rand(9, dist.param_dim, generator=gen) < 0.6
    mask[:, 0] = True
    if isinstance(dist, MultiCategorical):
        mask[:, dist.nvec[0]] = True
    return actor, obs, mask


CASES = {
    "cnn_categorical": lambda: (*cnn_actor(Categorical(3)), None, Categorical(3)),
    "dict_multicategorical": lambda: (*dict_actor(MultiCategorical([2, 3])), None, MultiCategorical([2, 3])),
    "masked_categorical": lambda: (*masked_actor(Categorical(5)), Categorical(5)),
    "masked_multicategorical": lambda: (*masked_actor(MultiCategorical([3, 4])), MultiCategorical([3, 4])),
}


@functools.cache
def case_hessian(case: str) -> torch.Tensor:
    """The explicit Hessian of a case (its actor is rebuilt identically by every CASES call)."""
    actor, obs, mask, dist = CASES[case]()
    return explicit_kl_hessian(actor, obs, dist, mask)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("make_fvp", [analytic_fvp, double_backprop_fvp])
def test_fvp_equals_explicit_hessian_of_mean_kl(case: str, make_fvp) -> None:  # type: ignore[no-untyped-def]
    actor, obs, mask, dist = CASES[case]()
    h = case_hessian(case)
    assert float(torch.linalg.matrix_norm(h)) > 0
    fvp = make_fvp(actor, detached_params(actor), obs, dist, mask)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(h.shape[0], generator=gen, dtype=torch.float64)
        expected = h @ v
        got = fvp(v)
        assert float(torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected)) < 1e-6


def test_masked_fisher_ignores_the_logits_of_illegal_actions() -> None:
    """A mask changes F: the masked Hessian is not the unmasked one (the masks really enter the FVP)."""
    actor, obs, _, dist = CASES["masked_categorical"]()
    masked = case_hessian("masked_categorical")
    unmasked = explicit_kl_hessian(actor, obs, dist, None)
    assert float(torch.linalg.matrix_norm(masked - unmasked)) > 1e-3 * float(torch.linalg.matrix_norm(unmasked))


# ---------------------------------------------------------------- the line search on image and masked batches


def _agent(env_cls: type | str, **overrides: object) -> TRPO:
    cfg = TRPOConfig(n_envs=2, n_steps=64, max_kl=0.01, cnn_features_dim=16, hidden_sizes=(16,), **overrides)  # type: ignore[arg-type]
    return TRPO(env_cls, cfg, seed=0)


@pytest.mark.parametrize("env_cls", [PixelSide, MaskedChoice])
def test_accepted_steps_keep_mean_kl_within_delta(env_cls: type) -> None:
    from conftest import collect

    agent = _agent(env_cls)
    for _ in range(3):
        batch = collect(agent)
        assert (batch.masks is not None) == (env_cls is MaskedChoice)
        if env_cls is PixelSide:
            assert batch.obs.dtype == torch.uint8
        with torch.no_grad():
            p_k = agent.actor(batch.obs, batch.masks)
        adv = (batch.advantages - batch.advantages.mean()) / (batch.advantages.std() + 1e-8)
        log_prob_k = agent.dist.log_prob(p_k, batch.actions)
        stats = agent.policy_step(PolicyBatch(batch.obs, batch.actions, adv, p_k, log_prob_k, mask=batch.masks))
        with torch.no_grad():
            kl = agent.dist.kl(p_k, agent.actor(batch.obs, batch.masks)).mean()
        assert float(kl) <= agent.config.max_kl * (1 + 1e-9)
        if stats.line_search_success:
            assert math.isclose(float(kl), stats.kl, rel_tol=1e-5)


# ---------------------------------------------------------------- predict, save and load


def test_predict_checks_dict_observations_key_by_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _agent(DictMode)
    obs = {"mode": 2, "noise": np.zeros(2, np.float32)}
    assert agent.predict(obs).shape == ()
    batch = {"mode": np.array([0, 1, 2]), "noise": np.zeros((3, 2), np.float32)}
    assert agent.predict(batch).shape == (3,)
    with pytest.raises(ObservationError, match="without the key"):
        agent.predict({"noise": np.zeros(2, np.float32)})
    with pytest.raises(ObservationError, match="'noise' has shape"):
        agent.predict({"mode": 1, "noise": np.zeros(3, np.float32)})
    with pytest.raises(ObservationError, match="dict observation"):
        agent.predict(np.zeros(3))
    agent.save(tmp_path / "m")
    loaded = TRPO.load(tmp_path / "m", env=DictMode)
    np.testing.assert_array_equal(loaded.predict(batch), agent.predict(batch))
    assert isinstance(loaded.observation_space, spaces.Dict)


def test_predict_honours_action_masks() -> None:
    agent = _agent(MaskedChoice)
    obs = np.zeros((200, 4), np.float32)
    masks = np.zeros((200, 4), bool)
    masks[np.arange(200), np.arange(200) % 4] = True  # one legal action per row
    for deterministic in (True, False):
        np.testing.assert_array_equal(agent.predict(obs, deterministic, action_masks=masks), np.arange(200) % 4)
    with pytest.raises(ObservationError, match="allows no action"):
        agent.predict(obs[0], action_masks=np.zeros(4, bool))
    with pytest.raises(ObservationError, match="action_masks of shape"):
        agent.predict(obs[0], action_masks=np.ones(3, bool))


# ---------------------------------------------------------------- learning


def test_a_pixel_policy_learns_what_only_the_pixels_show() -> None:
    from trpo.run.evaluation import evaluate

    cfg = TRPOConfig(n_envs=8, n_steps=32, max_kl=0.05, cnn_features_dim=32, hidden_sizes=(32,), vf_epochs=2)
    agent = TRPO(PixelSide, cfg, seed=0)
    agent.learn(1024)
    result = evaluate(agent, episodes=10, seed=123)
    assert float(result["mean_return"]) >= 7.0  # of 8; a policy blind to the pixels gets 4 on average


def test_a_dict_policy_learns_from_its_discrete_key() -> None:
    from trpo.run.evaluation import evaluate

    cfg = TRPOConfig(n_envs=8, n_steps=32, max_kl=0.05, hidden_sizes=(32,))
    agent = TRPO(DictMode, cfg, seed=0)
    agent.learn(2048)
    assert float(evaluate(agent, episodes=10, seed=123)["mean_return"]) >= 7.0  # of 8; blind to "mode": 8/3


@pytest.mark.parametrize("env_cls", [MaskedChoice, MaskedChoiceInfo])
def test_with_masks_no_illegal_action_is_ever_taken(env_cls: type) -> None:
    from trpo.run.evaluation import evaluate

    MaskedChoiceInfo.illegal = MaskedChoiceInfo.legal_steps = 0
    agent = TRPO(env_cls, TRPOConfig(n_envs=4, n_steps=64, hidden_sizes=(16,)), seed=0)
    agent.learn(1024)
    result = evaluate(agent, episodes=5, deterministic=False)
    assert MaskedChoiceInfo.illegal == 0 and MaskedChoiceInfo.legal_steps > 1000
    assert float(result["mean_return"]) == 8.0


def test_images_of_any_byte_count_unpack() -> None:
    """7 x 7 x 3 = 147 bytes (not a multiple of 4), alone and beside a float leaf."""
    image = spaces.Box(0, 255, (7, 7, 3), np.uint8)
    for space in (image, spaces.Dict({"image": image, "x": spaces.Box(-1, 1, (2,), np.float32)})):
        layout = ObservationLayout(space)
        space.seed(0)
        raw = layout.stack([space.sample() for _ in range(3)])
        rows = torch.from_numpy(layout.pack(raw, lambda v: v.astype(np.float32)))
        for start in (0, 1, 2):  # slices at every offset, down to a single row
            parts = layout.unpack(rows[start:])
            pixels = raw["image"] if isinstance(raw, dict) else raw
            assert torch.equal(parts[0], torch.from_numpy(pixels[start:]).permute(0, 3, 1, 2))
            if isinstance(raw, dict):
                np.testing.assert_array_equal(parts[1].numpy(), raw["x"][start:])


@pytest.mark.parametrize(
    ("env_cls", "names"),
    [(PixelSide, ["obs"]), (DictMode, ["obs.mode", "obs.noise"]), (MaskedChoice, ["obs", "action_mask"])],
)
def test_export_takes_the_same_observation_structure(env_cls: type, names: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import require

    onnx = require("onnx", "export")
    ort = require("onnxruntime", "export")
    from trpo.tools.export import TOLERANCE, export_checked, random_masks, random_observations

    agent = _agent(env_cls)
    agent.learn(256)  # normaliser statistics and weights away from their initial values
    diff = export_checked(agent, tmp_path / "p.onnx", samples=64)
    assert diff <= TOLERANCE
    assert [i.name for i in onnx.load(str(tmp_path / "p.onnx")).graph.input] == names
    if env_cls is MaskedChoice:  # masked actions are never chosen by the graph either
        session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
        obs, masks = random_observations(agent, 50, seed=3), random_masks(agent, 50, seed=3)
        (actions,) = session.run(["action"], {"obs": obs, "action_mask": masks})
        assert bool(masks[np.arange(50), actions].all())


def test_discrete_and_tuple_observations_train() -> None:
    """FrozenLake's Discrete(16) position and Blackjack's Tuple of Discretes: one-hot encoded, no normaliser."""
    for env_id in ("FrozenLake-v1", "Blackjack-v1"):
        agent = TRPO(env_id, TRPOConfig(n_envs=2, n_steps=32, hidden_sizes=(8,)), seed=0)
        assert agent.layout.norm_dim == 0 and agent.actor.encoder is not None
        agent.learn(128)
        obs = agent.observation_space.sample()
        assert agent.action_space.contains(agent.predict(obs))


def test_worker_processes_carry_uint8_frames_and_masks() -> None:
    """sampler=process: the workers' rollouts keep images as uint8 and bring the masks back with them."""
    from conftest import collect

    for env_cls in (PixelSide, MaskedChoice):
        agent = _agent(env_cls, sampler="process", workers=2)
        try:
            batch = collect(agent)
        finally:
            agent.close()
        assert batch.obs.shape[0] == 128
        if env_cls is PixelSide:
            assert batch.obs.dtype == torch.uint8 and batch.masks is None
        else:
            assert batch.masks is not None and batch.masks.shape == (128, 4)
            assert bool(batch.masks.gather(1, batch.actions[:, None]).all())  # actions were legal
            assert bool((batch.masks.sum(1) == 2).all())  # the env's masks, not all-True defaults


@pytest.mark.parametrize("env_cls", [DictMode, MaskedChoice])
def test_a_saved_learner_continues_training(env_cls: type, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Save and load with the sampler's state (Dict observations, masks) and train on. These environments'
    internal state is not capturable (trpo captures classic control and MuJoCo), so episodes restart."""
    first = _agent(f"obs_envs:{env_cls.__name__}-v0").learn(256)
    first.save(tmp_path / "m")
    resumed = TRPO.load(tmp_path / "m").learn(256)
    assert resumed.num_steps == 512
    assert resumed.layout.structure == ("dict" if env_cls is DictMode else "single")


def test_raw_observations_round_trip_through_checkpoint_tensors() -> None:
    layout = ObservationLayout(DICT_SPACE)
    DICT_SPACE.seed(2)
    raw = layout.stack([DICT_SPACE.sample() for _ in range(3)])
    back = layout.from_tensors(layout.to_tensors(raw, "collector.raw_obs"), "collector.raw_obs")
    assert set(back) == set(raw) and all(np.array_equal(back[k], raw[k]) for k in raw)
