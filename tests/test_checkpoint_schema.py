"""A checkpoint from elsewhere is data (issue 17, findings 2-6, 9, 13, 14): everything read from state.json,
config.yaml and model.safetensors is checked against the declared schema before anything is built, and a
refusal is one line naming the file and the field, with exit status 2."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save

from conftest import SMALL_RUN, copy_run, train_tiny_run
from trpo import TRPO, TRPOConfig, load
from trpo.cli.main import main
from trpo.errors import UserError
from trpo.run import evaluation
from trpo.run.checkpoint import CheckpointError
from trpo.sampling import env_state

SMALL = SMALL_RUN


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("template"))


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Path:
    return copy_run(template, tmp_path)


def state_path(run: Path) -> Path:
    return run / "checkpoint" / "state.json"


def edit_state(run: Path, change: Callable[[dict[str, Any]], None]) -> None:
    state = json.loads(state_path(run).read_text())
    change(state)
    state_path(run).write_text(json.dumps(state))


def edit_tensors(run: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    model = run / "checkpoint" / "model.safetensors"
    tensors = load_file(model)
    change(tensors)
    data = save(tensors)
    model.write_bytes(data)
    edit_state(run, lambda s: s.update(model_sha256=hashlib.sha256(data).hexdigest()))


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("resum")]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def refused_by_eval_and_resume(capsys: pytest.CaptureFixture[str], run: Path, *fragments: str) -> None:
    one_error_line(capsys, ["eval", str(run), "--episodes", "1"], *fragments)
    one_error_line(capsys, ["train", "--resume", str(run), "--quiet"], *fragments)


def test_the_template_loads_and_resumes(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert main(["train", "--resume", str(run), "--total-steps", "64", "--quiet"]) == 0
    assert load(run).num_steps == 64


# --- finding 2: JSON that breaks the parser or the types


def test_infinity_in_a_counter(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = state_path(run).read_text().replace('"num_steps": 32', '"num_steps": Infinity')
    state_path(run).write_text(text)
    refused_by_eval_and_resume(capsys, run, "state.json", "Infinity")


def test_json_nested_200k_deep(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = state_path(run).read_text()
    state_path(run).write_text(text[:-1].rstrip() + ', "deep": ' + "[" * 200_000 + "]" * 200_000 + "}")
    refused_by_eval_and_resume(capsys, run, "state.json", "deeply")


def test_a_100k_digit_integer(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = state_path(run).read_text().replace('"num_steps": 32', '"num_steps": ' + "9" * 100_000)
    state_path(run).write_text(text)
    refused_by_eval_and_resume(capsys, run, "state.json", "digits")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.update(health=[]), "health"),
        (lambda s: s.update(observation_space="Box"), "observation_space"),
        (lambda s: s["rng"]["numpy"].update(key=[1, 2, 3]), "rng.numpy.key"),
        (lambda s: s["rng"].update(python=[3, [1, 2], None]), "rng.python"),
        (lambda s: s.update(config=[1, 2]), "config"),
        (lambda s: s["config"].update(max_kl="big"), "max_kl"),
        (lambda s: s.update(num_updates=-1), "num_updates"),
        (lambda s: s.update(num_steps=True), "num_steps"),
        (lambda s: s["action_space"].update(n=0), "action_space.n"),
        (lambda s: s.update(extra_entry=1), "extra_entry"),
        (lambda s: s.update(algo=["trpo"]), "algorithm"),
    ],
)
def test_values_of_the_wrong_type(
    run: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, Any]], None], field: str
) -> None:
    edit_state(run, change)
    one_error_line(capsys, ["eval", str(run), "--episodes", "1"], "state.json", field)


def test_a_500mb_state_json_is_refused_unread(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(state_path(run), "r+b") as f:
        f.truncate(500 << 20)  # sparse: no disk is used
    start = time.perf_counter()
    one_error_line(capsys, ["eval", str(run)], "state.json", "bytes")
    assert time.perf_counter() - start < 5


# --- finding 3: sizes in a checkpoint's config


def test_checkpoint_asking_for_terabytes_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_state(run, lambda s: s["config"].update(n_envs=10**12))
    one_error_line(capsys, ["eval", str(run)], "state.json", "needs about")


def test_checkpoint_with_a_float_n_envs(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_state(run, lambda s: s["config"].update(n_envs=1e12))
    one_error_line(capsys, ["eval", str(run)], "state.json", "n_envs must be an integer")


def test_checkpoint_with_huge_hidden_sizes_is_refused_at_once(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_state(run, lambda s: s["config"].update(hidden_sizes=[8000, 8000]))
    start = time.perf_counter()
    one_error_line(capsys, ["eval", str(run)], "state.json", "parameters")
    assert time.perf_counter() - start < 5


def test_hidden_sizes_that_do_not_match_the_tensors(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_state(run, lambda s: s["config"].update(hidden_sizes=[32, 32]))
    one_error_line(capsys, ["eval", str(run)], "model.safetensors", "shape")


# --- finding 4: tampering that used to load and crash at the first rollout or update


def _env0(s: dict[str, Any]) -> dict[str, Any]:
    envs: list[dict[str, Any]] = s["collector"]["envs"]
    return envs[0]


STATE_TAMPERING: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (lambda s: s["collector"].update(episode_return=[0.0]), "collector.episode_return"),
    (lambda s: s["collector"].update(episode_length=[-1, 2]), "collector.episode_length"),
    (lambda s: s["collector"].update(reward_returns="zero"), "collector.reward_returns"),
    (lambda s: s["collector"].update(recent_returns=[0.0] * 101), "collector.recent_returns"),
    (lambda s: s["collector"].update(episodes=-3), "collector.episodes"),
    (lambda s: _env0(s)["core"]["state"].update(array=[0.0, 1.0]), "collector.envs[0].core.state"),
    (lambda s: _env0(s)["core"].update(render_mode="human"), "collector.envs[0].core"),
    (lambda s: _env0(s)["wrappers"][1].update(_max_episode_steps=10**9), "collector.envs[0].wrappers[1]"),
    (lambda s: _env0(s)["wrappers"][0].update(episode_step="x"), "collector.envs[0].wrappers[0].episode_step"),
    (lambda s: _env0(s)["np_random"].update(bit_generator="MT19937"), "collector.envs[0].np_random"),
    (lambda s: _env0(s)["core"]["state"].update(dtype="object"), "collector.envs[0].core.state"),
]


@pytest.mark.parametrize(("change", "field"), STATE_TAMPERING)
def test_tampered_collector_state_is_refused_on_resume(
    run: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, Any]], None], field: str
) -> None:
    edit_state(run, change)
    one_error_line(capsys, ["train", "--resume", str(run), "--total-steps", "64", "--quiet"], field)


TENSOR_TAMPERING: list[tuple[Callable[[dict[str, torch.Tensor]], None], str]] = [
    (lambda t: t.update({"collector.raw_obs": torch.zeros(3, 4)}), "collector.raw_obs"),
    (lambda t: t.update({"collector.raw_obs": torch.full((2, 4), float("nan"))}), "collector.raw_obs"),
    (lambda t: t.update({"critic_optimizer.0.exp_avg": torch.zeros(3)}), "critic_optimizer.0.exp_avg"),
    (lambda t: t["critic_optimizer.1.exp_avg_sq"].fill_(-1.0), "critic_optimizer.1.exp_avg_sq"),
    (lambda t: t["critic_optimizer.0.step"].fill_(float("nan")), "critic_optimizer.0.step"),
    (lambda t: t.pop("critic_optimizer.2.exp_avg"), "critic_optimizer.2.exp_avg"),
    (lambda t: t.update({"critic_optimizer.99.step": torch.zeros(())}), "critic_optimizer.99.step"),
    (lambda t: t.update({"rng.generator": torch.zeros(7, dtype=torch.uint8)}), "rng.generator"),
]


@pytest.mark.parametrize(("change", "field"), TENSOR_TAMPERING)
def test_tampered_tensors_are_refused_before_building(
    run: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, torch.Tensor]], None], field: str
) -> None:
    edit_tensors(run, change)
    argv = ["train", "--resume", str(run), "--total-steps", "64", "--quiet"]
    one_error_line(capsys, argv, "model.safetensors", field)


def test_env_state_sets_only_allow_listed_attributes() -> None:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    state = env_state.capture(env)
    assert state is not None
    core = env.unwrapped
    for name, value in (("render_mode", "human"), ("__class__", None), ("gravity", 0.0)):
        hostile = json.loads(json.dumps(state))
        hostile["core"][name] = value
        before = getattr(core, name)
        with pytest.raises(UserError, match=r"collector\.envs"):
            env_state.restore(env, hostile)
        assert getattr(core, name) is before or getattr(core, name) == before
    env_state.restore(env, json.loads(json.dumps(state)))  # the genuine state is restored


# --- finding 14: non-finite weights and statistics, negative counters


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda t: t["actor.head.weight"].view(-1).__setitem__(0, float("nan")), "actor.head.weight"),
        (lambda t: t["critic.net.0.bias"].fill_(float("inf")), "critic.net.0.bias"),
        (lambda t: t["obs_rms.var"].fill_(-1.0), "obs_rms.var"),
        (lambda t: t["ret_rms.count"].fill_(-5.0), "ret_rms.count"),
        (lambda t: t.update({"actor.head.weight": t["actor.head.weight"].to(torch.int32)}), "floating point"),
    ],
)
def test_non_finite_or_negative_statistics_are_refused(
    run: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, torch.Tensor]], None], field: str
) -> None:
    edit_tensors(run, change)
    one_error_line(capsys, ["eval", str(run), "--episodes", "1"], "model.safetensors", field)


def test_negative_counters_are_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_state(run, lambda s: s.update(num_steps=-64))
    one_error_line(capsys, ["eval", str(run)], "state.json", "num_steps")


def test_a_model_file_larger_than_its_tensors_is_refused_unread(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(run / "checkpoint" / "model.safetensors", "r+b") as f:
        f.truncate(1 << 30)
    one_error_line(capsys, ["eval", str(run)], "model.safetensors", "bytes")


# --- finding 5: saved spaces against the environment


def test_a_model_relabelled_for_another_env_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def relabel(s: dict[str, Any]) -> None:
        s["env_id"] = "Pendulum-v1"
        s["env_spec"] = {"env_id": "Pendulum-v1", "env_kwargs": {}, "env_wrappers": []}

    edit_state(run, relabel)
    one_error_line(capsys, ["eval", str(run), "--episodes", "1"], "Pendulum-v1", "observation space")


def test_eval_with_another_env_flag_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_error_line(capsys, ["eval", str(run), "--env", "Acrobot-v1", "--episodes", "1"], "space")


# --- finding 6: a run directory never says where to sample


def test_a_foreign_ray_address_is_never_used(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_state(run, lambda s: s["config"].update(sampler="ray", ray_address="10.0.0.1:6379", workers=2))
    agent = load(run)
    assert agent.config.sampler == "sync" and agent.config.ray_address == "" and agent.config.workers == 2
    modules_before = "ray" in sys.modules
    assert main(["train", "--resume", str(run), "--total-steps", "64", "--quiet"]) == 0
    assert ("ray" in sys.modules) == modules_before  # Ray was not even imported
    assert main(["eval", str(run), "--episodes", "1"]) == 0


def test_the_sampler_comes_from_the_command_line(run: Path) -> None:
    assert main(["train", "--resume", str(run), "--total-steps", "64", "--quiet", "--sampler", "async"]) == 0
    assert load(run).config.sampler == "sync"  # loading alone still ignores what the run recorded
    assert load(run, trust_run_sampler=True).config.sampler == "async"


# --- finding 13: flags given with --resume are applied or refused


def test_resume_applies_total_steps_and_refuses_max_kl(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_error_line(
        capsys, ["train", "--resume", str(run), "--total-steps", "64", "--max-kl", "0.5"], "--max-kl", "resuming"
    )
    assert load(run).num_steps == 32  # nothing was trained
    one_error_line(capsys, ["train", "--resume", str(run), "--config", "x.yaml"], "--config")
    one_error_line(capsys, ["train", "--resume", str(run), "--seed", "3"], "--seed")
    assert main(["train", "--resume", str(run), "--total-steps", "64", "--checkpoint-every", "1", "--quiet"]) == 0
    assert "applying total_steps=64" in capsys.readouterr().err
    assert load(run).num_steps == 64


# --- finding 9: an environment that never ends


class NeverEnds(gym.Env[np.ndarray, int]):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(2, np.float32), 1.0, False, False, {}


gym.register("NeverEnds-v0", entry_point=NeverEnds)


def test_an_env_that_never_ends_cannot_hang_train_or_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluation, "DEFAULT_MAX_EPISODE_STEPS", 300)
    evaluation._warned.clear()
    run = tmp_path / "never"
    argv = ["train", "NeverEnds-v0", "--total-steps", "32", "--run-dir", str(run), *SMALL]
    argv[argv.index("--eval-episodes") + 1] = "2"
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "has no time limit" in err and "300" in err
    assert json.loads((run / "summary.json").read_text())["mean_return"] == 300.0
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_length"] == 300.0


def test_the_episode_cap_is_configurable() -> None:
    agent = TRPO("NeverEnds-v0", TRPOConfig(n_envs=2, n_steps=8, eval_max_episode_steps=25))
    assert evaluation.evaluate(agent, episodes=1)["mean_length"] == 25.0
    capped = TRPO("CartPole-v1", TRPOConfig(n_envs=2, n_steps=8))
    assert evaluation.episode_step_cap(capped, gym.make("CartPole-v1")) == 500  # the env's own TimeLimit


# --- fuzz: random mutations of a valid state.json or config.yaml


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list) and len(value) <= 8:
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(document: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    target = document
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON_VALUES, delete=st.booleans())
def test_fuzzed_state_json_is_refused_in_one_line_or_loads(
    template: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, value: Any, delete: bool
) -> None:
    run = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(template, run)
    state = json.loads(state_path(run).read_text())
    path = data.draw(st.sampled_from(_paths(state)))
    state = _mutate(state, path, value, delete)
    state_path(run).write_text(json.dumps(state))
    _eval_is_clean(run)


@pytest.mark.parametrize("value", [True, 3, "CartPole-v1", ["env_id"]])
def test_an_env_spec_that_is_not_a_mapping_is_refused_in_one_line(
    template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: Any
) -> None:
    run = tmp_path / "run"
    shutil.copytree(template, run)
    state = json.loads(state_path(run).read_text())
    state["env_spec"] = value
    state_path(run).write_text(json.dumps(state))
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "env_spec must be a mapping" in err


def test_a_line_break_in_a_key_stays_on_the_one_error_line(template: Path, tmp_path: Path) -> None:
    """A key read from state.json is echoed in the error; its carriage return or newline is written escaped."""
    run = tmp_path / "run"
    shutil.copytree(template, run)
    state = json.loads(state_path(run).read_text())
    state["health"]["streaks"] = {"\r": None, "a\nb": None}
    state_path(run).write_text(json.dumps(state))
    _eval_is_clean(run)
    assert main(["eval", str(run), "--episodes", "1"]) == 2


def _eval_is_clean(run: Path) -> None:
    import contextlib
    import io

    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["eval", str(run), "--episodes", "1"])
    assert time.perf_counter() - start < 30
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code != 0:
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON_VALUES, delete=st.booleans())
def test_fuzzed_config_yaml_is_refused_in_one_line_or_read(
    template: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, value: Any, delete: bool
) -> None:
    import yaml

    from trpo.config.schema import load_yaml_config
    from trpo.errors import ConfigError
    from trpo.run.run_dir import RunDir

    run = tmp_path_factory.mktemp("fuzzyaml") / "run"
    shutil.copytree(template, run)
    document = yaml.safe_load((run / "config.yaml").read_text())
    path = data.draw(st.sampled_from(_paths(document)))
    document = _mutate(document, path, value, delete)
    (run / "config.yaml").write_text(yaml.safe_dump(document))
    RunDir(run).is_run()  # never raises
    try:
        load_yaml_config(run / "config.yaml").validate()
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600


# --- property: a checkpoint that loads runs an update


@settings(max_examples=6, deadline=None)
@given(
    algo=st.sampled_from(["trpo", "npg", "ppo"]),
    env_id=st.sampled_from(["CartPole-v1", "Pendulum-v1"]),
    n_envs=st.integers(1, 3),
    hidden=st.lists(st.integers(1, 12), min_size=1, max_size=2),
    normalize=st.booleans(),
)
def test_a_loaded_checkpoint_always_runs_one_update(
    tmp_path_factory: pytest.TempPathFactory, algo: str, env_id: str, n_envs: int, hidden: list[int], normalize: bool
) -> None:
    from trpo import make_agent

    config = TRPOConfig(
        algo=algo, n_envs=n_envs, n_steps=8, hidden_sizes=tuple(hidden), normalize_obs=normalize,
        normalize_reward=normalize, ppo_minibatch_size=8, vf_minibatch_size=8,
    ).read_only()  # fmt: skip
    path = tmp_path_factory.mktemp("prop") / "model"
    agent = make_agent(env_id, config)
    agent.learn(config.batch_size)
    agent.save(path)
    agent.close()
    loaded = load(path)
    loaded.learn(config.batch_size)
    assert loaded.num_updates == 2
    loaded.close()


def test_check_state_error_names_file_and_field(run: Path) -> None:
    edit_state(run, lambda s: s["health"].update(line_search_failures="many"))
    with pytest.raises(CheckpointError, match=r"state\.json: health\.line_search_failures: must be an integer"):
        load(run)
