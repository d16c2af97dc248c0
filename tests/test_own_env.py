"""Bring your own environment: MODULE:ENV_ID, env kwargs and wrappers from the command line and config files,
env instances and vector envs in the API, run directories that are never imported as code, and one clear
line for every broken Gymnasium contract."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

import trpo
from trpo import TRPO, TRPOConfig, evaluate, load
from trpo.errors import ConfigError, EnvContractError, UserError
from trpo.sampling.env_spec import EnvSpec, WrapperSpec, parse_wrapper, preset_env_spec

SRC = str(Path(trpo.__file__).resolve().parents[1])  # this checkout's code, for subprocesses in any cwd
TINY = ["--n-envs", "1", "--n-steps", "64", "--total-steps", "64", "--eval-episodes", "1", "--quiet"]

ENV_MODULE = '''
"""Test environments: Steady pays `scale` every step (so a return shows the kwarg and the episode length),
Broken breaks the Gymnasium contract the way `what` says at its `at`-th step (counted over episodes)."""
import gymnasium as gym
import numpy as np


class Steady(gym.Env):
    def __init__(self, scale=1.0, shape=(2,)):
        self.scale = scale
        self.observation_space = gym.spaces.Box(-1.0, 1.0, tuple(shape), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        obs = self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32)
        return obs, float(self.scale), False, False, {}


class Broken(Steady):
    def __init__(self, what="shape", at=3):
        super().__init__(shape=(3,))
        self.what, self.at, self.count = what, at, 0

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return (np.zeros(4, np.float32) if self.what == "reset_shape" else obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.count += 1
        if self.count == self.at:
            if self.what == "shape":
                obs = np.zeros(2, np.float32)
            elif self.what == "dtype":
                obs = obs.astype(np.float64)
            elif self.what == "none":
                obs = None
            elif self.what == "reward":
                reward = "1.0"
            elif self.what == "info":
                info = None
            elif self.what == "terminated":
                terminated = 0
            elif self.what == "truncated":
                truncated = "no"
        return obs, reward, terminated, truncated, info


class Words(Steady):
    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Text(8)

    def reset(self, *, seed=None, options=None):
        return "word", {}


gym.register("Steady-v0", entry_point=Steady, max_episode_steps=50)
gym.register("Broken-v0", entry_point=Broken, max_episode_steps=20)
gym.register("Words-v0", entry_point=Words, max_episode_steps=20)
'''

EVIL = "from pathlib import Path\nPath({marker!r}).write_text('imported')\n"


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the module `trpo_test_envs` (written here, put on sys.path and PYTHONPATH)."""
    directory = tmp_path_factory.mktemp("modules")
    (directory / "trpo_test_envs.py").write_text(ENV_MODULE)
    sys.path.insert(0, str(directory))
    yield directory
    sys.path.remove(str(directory))


@pytest.fixture(scope="module")
def envs(modules: Path) -> Any:
    import trpo_test_envs

    return trpo_test_envs


def run(*args: str | Path, pythonpath: list[Path | str], cwd: Path | None = None, console: bool = False) -> Any:
    """`python -m trpo ARGS` (or the `trpo` console script) with exactly `pythonpath` (plus this checkout)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), SRC])}
    command = [str(Path(sys.executable).parent / "trpo")] if console else [sys.executable, "-m", "trpo"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single line of a user error (exit 2, no traceback); lines before `error:` are the run's own output."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Warn" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("algo:", "env:"))]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def summary_return(run_dir: Path) -> float:
    return float(json.loads((run_dir / "summary.json").read_text())["mean_return"])


# ------------------------------------------------------------------ the command line


def test_custom_module_with_kwargs_and_wrapper_trains_and_evaluates(modules: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run("train", "trpo_test_envs:Steady-v0", "--env-kwargs", "{scale: 3}",
                 "--wrapper", 'gymnasium.wrappers:TimeLimit={"max_episode_steps": 7}',
                 "--run-dir", run_dir, *TINY, pythonpath=[modules])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert summary_return(run_dir) == 21.0  # 7 steps (the wrapper) of reward 3 (the kwarg)
    assert "env: trpo_test_envs:Steady-v0 --env-kwargs '{\"scale\": 3}' --wrapper 'gymnasium.wrappers:TimeLimit=" in (
        result.stderr
    )
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    expected = {
        "env_id": "trpo_test_envs:Steady-v0",
        "env_kwargs": {"scale": 3},
        "env_wrappers": [{"gymnasium.wrappers:TimeLimit": {"max_episode_steps": 7}}],
    }
    assert {k: config[k] for k in expected} == expected
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["env_spec"] == expected

    evaluated = run("eval", run_dir, "--json", "--episodes", "2", pythonpath=[modules], cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["returns"] == [21.0, 21.0]
    overridden = run("eval", run_dir, "--json", "--env-kwargs", '{"scale": 5}', pythonpath=[modules])
    assert json.loads(overridden.stdout)["mean_return"] == 35.0  # the run's wrapper, the flag's kwargs


def test_config_file_gives_the_env_and_flags_replace_its_kwargs(modules: Path, tmp_path: Path) -> None:
    file = tmp_path / "steady.yaml"
    file.write_text(
        "env_id: trpo_test_envs:Steady-v0\nenv_kwargs: {scale: 2}\n"
        "env_wrappers:\n  - gymnasium.wrappers:TimeLimit: {max_episode_steps: 5}\nn_steps: 64\n"
    )
    result = run("train", "--config", file, "--run-dir", tmp_path / "a", *TINY, pythonpath=[modules])
    assert result.returncode == 0, result.stderr
    assert summary_return(tmp_path / "a") == 10.0
    result = run("train", "--config", file, "--env-kwargs", "{scale: 4}", "--run-dir", tmp_path / "b", *TINY,
                 pythonpath=[modules])  # fmt: skip
    assert summary_return(tmp_path / "b") == 20.0
    rerun = run("train", "--config", tmp_path / "b" / "config.yaml", "--run-dir", tmp_path / "c", *TINY,
                pythonpath=[modules])  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert summary_return(tmp_path / "c") == 20.0  # config.yaml holds the whole env spec


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "no_such_module:Steady-v0"], ["cannot import module 'no_such_module'", "PYTHONPATH"]),
        (["train", "trpo_test_envs:Nope-v0"], ["unknown environment id 'trpo_test_envs:Nope-v0'"]),
        (["train", "trpo_test_envs:Steady-v0", "--env-kwargs", "{nope: 1}"], ["cannot make", "nope"]),
        (["train", "trpo_test_envs:Steady-v0", "--env-kwargs", "[1, 2]"], ["--env-kwargs", "must be a mapping"]),
        (["train", "CartPole-v1", "--wrapper", "FlattenObservation"], ["a wrapper is MODULE:CLASS"]),
        (["train", "CartPole-v1", "--wrapper", "gymnasium.wrappers:Nope"], ["has no attribute 'Nope'"]),
        (["train", "CartPole-v1", "--wrapper", "gymnasium.wrappers:TimeLimit={x: 1}"], ["cannot apply wrapper"]),
        (["train", "trpo_test_envs:Words-v0"], ["unsupported observation space Text", "FilterObservation"]),
    ],
)
def test_env_mistakes_give_one_line(args: list[str], fragments: list[str], modules: Path, tmp_path: Path) -> None:
    one_error_line(run(*args, "--run-dir", tmp_path / "r", pythonpath=[modules]), *fragments)
    assert not (tmp_path / "r").exists()


def test_a_run_directory_is_never_imported(modules: Path, tmp_path: Path) -> None:
    """A run whose env spec names `evil:Env-v0`, with evil.py planted beside it: evaluating it from that
    directory (where `python -m` puts the current directory on sys.path) never imports evil.py."""
    run_dir = tmp_path / "run"
    result = run("train", "trpo_test_envs:Steady-v0", "--run-dir", run_dir, *TINY, pythonpath=[modules])
    assert result.returncode == 0, result.stderr
    state_file = run_dir / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state["env_spec"] = {"env_id": "evil:Env-v0", "env_kwargs": {}, "env_wrappers": []}
    state_file.write_text(json.dumps(state))
    marker = tmp_path / "imported.txt"
    (run_dir / "evil.py").write_text(EVIL.format(marker=str(marker)))
    (run_dir / "checkpoint" / "evil.py").write_text(EVIL.format(marker=str(marker)))
    for console in (False, True):
        result = run("eval", ".", "--episodes", "1", pythonpath=[modules], cwd=run_dir, console=console)
        one_error_line(result, "cannot import module 'evil'", "a run directory is data", "--env")
        assert not marker.exists()
    # the control: a module on an explicit PYTHONPATH is imported (the test above can fail)
    result = run("eval", ".", "--episodes", "1", pythonpath=[modules, run_dir], cwd=run_dir)
    assert marker.exists()


def test_run_trained_on_an_undescribable_env_takes_it_on_the_command_line(envs: Any, modules: Path,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    config = TRPOConfig(n_envs=1, n_steps=32, total_steps=64, eval_episodes=1)
    agent = TRPO(lambda: gym.wrappers.TimeLimit(envs.Steady(scale=2.0), 4), config)
    assert agent.env_spec is None  # made without gymnasium.make: nothing to record
    agent.learn(32)
    agent.save(tmp_path / "model")
    one_error_line(run("eval", tmp_path / "model", pythonpath=[modules]), "--env ENV_ID", "--env-kwargs")
    one_error_line(run("record", tmp_path / "model", pythonpath=[modules]), "--env ENV_ID")
    one_error_line(run("train", "--resume", tmp_path / "model", pythonpath=[modules]), "--env ENV_ID")
    given = ["--env", "trpo_test_envs:Steady-v0", "--env-kwargs", "{scale: 2}",
             "--wrapper", "gymnasium.wrappers:TimeLimit={max_episode_steps: 4}"]  # fmt: skip
    result = run("eval", tmp_path / "model", "--json", "--episodes", "1", *given, pythonpath=[modules])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mean_return"] == 8.0
    resumed = run("train", "--resume", tmp_path / "model", *given[1:], "--quiet", pythonpath=[modules])
    assert resumed.returncode == 0, resumed.stderr
    assert "mean return 8.00" in resumed.stdout
    result = run("eval", tmp_path / "model", "--json", "--episodes", "1", pythonpath=[modules])
    assert json.loads(result.stdout)["mean_return"] == 8.0  # the resumed run's checkpoint records the env


# ------------------------------------------------------------------ contract violations


@pytest.mark.parametrize(
    ("what", "fragments"),
    [
        ("reset_shape", ["at reset", "reset() returned an observation of shape (4,)", "expected shape (3,)"]),
        ("shape", ["at training step 6 (step 3 of its episode)", "of shape (2,)", "expected shape (3,)"]),
        ("dtype", ["dtype float64", "expected shape (3,) and dtype float32", "astype(np.float32)"]),
        ("none", ["an observation None", "expected a NumPy array of shape (3,)"]),
        ("reward", ["a reward '1.0' of type str", "expected a real number"]),
        ("info", ["an info None", "expected a dict"]),
        ("terminated", ["terminated = 0 of type int", "expected a bool"]),
        ("truncated", ["truncated = 'no' of type str", "expected a bool"]),
    ],
)
def test_contract_violations_name_env_step_expected_and_got(what: str, fragments: list[str], envs: Any) -> None:
    agent = TRPO(functools.partial(envs.Broken, what=what), TRPOConfig(n_envs=2, n_steps=8), seed=0)
    with pytest.raises(EnvContractError) as info:
        agent.learn(64)
    message = str(info.value)
    assert "\n" not in message and message.startswith("environment ") and "broke the Gymnasium contract" in message
    for fragment in fragments:
        assert fragment in message


def test_contract_violation_on_the_command_line_keeps_the_last_checkpoint(modules: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run("train", "trpo_test_envs:Broken-v0", "--env-kwargs", "{what: dtype, at: 150}", "--n-envs", "1",
                 "--n-steps", "64", "--checkpoint-every", "1", "--run-dir", run_dir, "--quiet",
                 pythonpath=[modules])  # fmt: skip
    one_error_line(result, "environment 0", "at training step 150", "dtype float64")
    assert load(run_dir).num_updates == 2  # the checkpoint of the last complete update


def test_contract_violation_in_a_process_worker_is_one_line(envs: Any, modules: Path) -> None:
    config = TRPOConfig(n_envs=2, n_steps=8, sampler="process", workers=1)
    agent = TRPO("trpo_test_envs:Broken-v0", config, env_kwargs={"what": "reward", "at": 5}, seed=0)
    try:
        with pytest.raises(UserError, match=r"sampler worker \d \(environments \d-\d\): environment \d broke"):
            agent.learn(64)
    finally:
        agent.close()


def test_two_dimensional_observations_are_flattened(envs: Any) -> None:
    agent = TRPO(lambda: envs.Steady(shape=(3, 2)), TRPOConfig(n_envs=2, n_steps=16), seed=0).learn(64)
    assert agent.obs_normalizer.rms.mean.shape == (6,) and agent.obs_normalizer.rms.count > 0
    assert agent.predict(np.zeros((3, 2), np.float32)).shape == ()


# ------------------------------------------------------------------ the API


def test_env_kwargs_of_an_id_reach_the_env_and_the_checkpoint(envs: Any, tmp_path: Path) -> None:
    agent = TRPO("trpo_test_envs:Steady-v0", TRPOConfig(n_envs=1, n_steps=32), env_kwargs={"scale": 0.5})
    assert evaluate(agent, episodes=1)["mean_return"] == 25.0  # 50 steps (the registered limit) of 0.5
    agent.save(tmp_path / "m")
    assert load(tmp_path / "m").env_spec == EnvSpec("trpo_test_envs:Steady-v0", {"scale": 0.5})


def test_instance_made_by_gymnasium_make_is_rebuilt_from_its_spec(envs: Any, tmp_path: Path) -> None:
    instance = gym.wrappers.ClipReward(gym.make("trpo_test_envs:Steady-v0", scale=3.0), max_reward=1.0)
    agent = TRPO(instance, TRPOConfig(n_envs=2, n_steps=16)).learn(64)
    wrapper = WrapperSpec("gymnasium.wrappers.transform_reward:ClipReward", {"min_reward": None, "max_reward": 1.0})
    assert agent.env_spec == EnvSpec("trpo_test_envs:Steady-v0", {"scale": 3.0}, (wrapper,))
    agent.save(tmp_path / "m")
    assert evaluate(load(tmp_path / "m"), episodes=1)["mean_return"] == 50.0  # clipped to 1 per step


def test_instance_without_spec_is_the_one_training_env(envs: Any) -> None:
    with pytest.raises(ConfigError, match="n_envs=2 needs 2 environments"):
        TRPO(envs.Steady(), TRPOConfig(n_envs=2))
    with pytest.raises(ConfigError, match="sampler=process needs a function"):
        TRPO(envs.Steady(), TRPOConfig(n_envs=1, sampler="process", workers=1))
    agent = TRPO(envs.Steady(scale=2.0), TRPOConfig(n_envs=1, n_steps=16)).learn(32)
    with pytest.raises(UserError, match="give evaluate"):
        evaluate(agent, episodes=1)
    assert evaluate(agent, episodes=1, env=gym.wrappers.TimeLimit(envs.Steady(scale=2.0), 3))["mean_return"] == 6.0


def test_vector_env_is_trained_on_as_given(envs: Any) -> None:
    vector = gym.make_vec("trpo_test_envs:Steady-v0", num_envs=3, vectorization_mode="sync",
                          vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})  # fmt: skip
    agent = TRPO(vector, TRPOConfig(n_envs=8, n_steps=16)).learn(96)
    assert agent.config.n_envs == 3 and agent.num_steps == 96
    assert agent.env_spec is not None and agent.env_spec.registered_id == "Steady-v0"
    assert evaluate(agent, episodes=1)["mean_return"] == 50.0
    with pytest.raises(UserError, match="autoreset in the same step"):
        TRPO(gym.make_vec("CartPole-v1", num_envs=2), TRPOConfig())


def test_wrapper_flag_syntax() -> None:
    assert parse_wrapper("gymnasium.wrappers:FlattenObservation") == WrapperSpec(
        "gymnasium.wrappers:FlattenObservation"
    )
    assert parse_wrapper('m.n:Cls={"k": 1, "v": [1, 2]}') == WrapperSpec("m.n:Cls", {"k": 1, "v": [1, 2]})
    assert parse_wrapper("m:Cls={k: 1.5}").kwargs == {"k": 1.5}
    with pytest.raises(UserError, match="not a JSON or YAML mapping"):
        parse_wrapper("m:Cls={k: [1}")


def test_record_follows_mujoco_locomotion_with_the_track_camera() -> None:
    pytest.importorskip("mujoco")
    from trpo.tools.record import render_factory

    cheetah = EnvSpec("HalfCheetah-v5")
    assert render_factory(cheetah).keywords == {"render_mode": "rgb_array", "camera_name": "track"}
    assert "camera_name" not in render_factory(cheetah, camera="free").keywords
    chosen = render_factory(cheetah, camera="1", width=64, height=48).keywords
    assert chosen == {"render_mode": "rgb_array", "camera_id": 1, "width": 64, "height": 48}
    assert "camera_name" not in render_factory(EnvSpec("InvertedPendulum-v5")).keywords
    with pytest.raises(UserError, match="--width must be >= 1"):
        render_factory(cheetah, width=0)


def test_contract_violation_with_async_envs_is_one_line(envs: Any, recwarn: pytest.WarningsRecorder) -> None:
    config = TRPOConfig(n_envs=2, n_steps=8, sampler="async")
    agent = TRPO("trpo_test_envs:Broken-v0", config, env_kwargs={"what": "info", "at": 5}, seed=0)
    try:
        with pytest.raises(EnvContractError, match=r"^environment \d broke .* an info None"):
            agent.learn(64)
    finally:
        agent.close()
    assert not [w for w in recwarn if "Traceback" in str(w.message)]  # Gymnasium's log of the worker's traceback


def test_checkpoint_without_env_spec_still_loads(tmp_path: Path) -> None:
    """Checkpoints of the previous release record only env_id (and config.yaml no env keys)."""
    TRPO("Pendulum-v1", TRPOConfig(n_envs=1, n_steps=32)).save(tmp_path / "m")
    state_file = tmp_path / "m" / "state.json"
    state = json.loads(state_file.read_text())
    del state["env_spec"]
    state_file.write_text(json.dumps(state))
    agent = load(tmp_path / "m")
    assert agent.env_spec == EnvSpec("Pendulum-v1") and agent.env_id == "Pendulum-v1"
    assert evaluate(agent, episodes=1)["episodes"] == 1


def test_process_workers_make_the_env_with_its_kwargs_and_wrappers(envs: Any) -> None:
    spec = EnvSpec(
        "trpo_test_envs:Steady-v0",
        {"scale": 3.0},
        (WrapperSpec("gymnasium.wrappers:TimeLimit", {"max_episode_steps": 7}),),
    )
    agent = TRPO(spec, TRPOConfig(n_envs=2, n_steps=16, sampler="process", workers=1), seed=0)
    try:
        agent.learn(32)
        returns = list(agent.start_sampler().stats.returns)
    finally:
        agent.close()
    assert returns and set(returns) == {21.0}  # episodes of 7 steps (the wrapper) paying 3 (the kwarg)


def test_compare_gives_every_run_the_env_spec(tmp_path: Path) -> None:
    from trpo.tools.compare import CompareArgs, compare_spec

    file = tmp_path / "c.yaml"
    file.write_text("env_kwargs: {g: 5.0}\nenv_wrappers: [gymnasium.wrappers:FlattenObservation]\n")
    args = CompareArgs("Pendulum-v1", config=file, wrapper=("gymnasium.wrappers:TimeLimit={max_episode_steps: 9}",))
    spec = compare_spec(args)
    assert spec == EnvSpec(
        "Pendulum-v1", {"g": 5.0}, (WrapperSpec("gymnasium.wrappers:TimeLimit", {"max_episode_steps": 9}),)
    )
    assert spec.flags() == [
        "--env-kwargs", '{"g": 5.0}', "--wrapper", 'gymnasium.wrappers:TimeLimit={"max_episode_steps": 9}'
    ]  # fmt: skip


def test_tune_trains_every_trial_on_the_env_spec(modules: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from trpo.tools.tune import TuneArgs, train_command_of

    out = tmp_path / "tune"
    result = run("tune", "trpo_test_envs:Steady-v0", "--env-kwargs", "{scale: 2}", "--wrapper",
                 "gymnasium.wrappers:TimeLimit={max_episode_steps: 3}", "--trials", "1", "--steps-per-trial", "64",
                 "--params", "max_kl", "--eval-every", "1", "--eval-episodes", "1", "--out", out,
                 pythonpath=[modules])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6.0" in (out / "best.yaml").read_text().splitlines()[0]  # final return 3 steps x 2
    args = TuneArgs("trpo_test_envs:Steady-v0", env_kwargs="{scale: 2}", out=out)
    assert train_command_of(args).startswith("""trpo train trpo_test_envs:Steady-v0 --env-kwargs '{"scale": 2}'""")


def test_env_kwargs_that_cannot_be_saved_are_refused() -> None:
    with pytest.raises(UserError, match="must be plain data"):
        TRPO("Pendulum-v1", env_kwargs={"g": np.array([9.0])})


# ------------------------------------------------------------------------- a preset's environment entries

PRESET_ENV = {"Pendulum-v1": {"env_kwargs": {"g": 5.0}, "max_kl": 0.03}}


@pytest.fixture
def preset_with_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pendulum-v1's preset holds env kwargs (g 5.0) besides a config field."""
    import trpo.config.presets as presets

    monkeypatch.setattr(presets, "_all_presets", lambda: {"trpo": PRESET_ENV})


@pytest.mark.usefixtures("preset_with_env")
def test_a_preset_env_kwargs_go_under_the_users_in_the_api() -> None:
    agent = TRPO("Pendulum-v1", seed=0)
    try:
        assert agent.config.max_kl == 0.03  # env_kwargs is not a config field
        assert agent.env_spec is not None and dict(agent.env_spec.kwargs) == {"g": 5.0}
        env = agent.env_fn()
        assert env.unwrapped.g == 5.0  # type: ignore[attr-defined]
        env.close()
    finally:
        agent.close()
    given = TRPO("Pendulum-v1", env_kwargs={"g": 7.0})  # a key the user gives wins
    assert given.env_spec is not None and dict(given.env_spec.kwargs) == {"g": 7.0}
    given.close()
    assert dict(preset_env_spec("Pendulum-v1", {"render_mode": "rgb_array"}).kwargs) == {
        "g": 5.0,
        "render_mode": "rgb_array",
    }
    explicit = TRPO("Pendulum-v1", TRPOConfig())  # an explicit config: no preset, no preset kwargs
    assert explicit.env_spec is not None and dict(explicit.env_spec.kwargs) == {}
    explicit.close()


@pytest.mark.usefixtures("preset_with_env")
def test_a_preset_env_kwargs_go_under_the_command_lines(tmp_path: Path) -> None:
    from trpo.cli.train import _parse_train

    def kwargs(*argv: str) -> dict[str, Any]:
        _, _, spec = _parse_train(["Pendulum-v1", *argv])
        assert spec is not None
        return dict(spec.kwargs)

    assert kwargs() == {"g": 5.0}
    assert kwargs("--env-kwargs", "{max_speed: 6.0}") == {"g": 5.0, "max_speed": 6.0}
    assert kwargs("--env-kwargs", "{g: 7.0}") == {"g": 7.0}
    assert kwargs("--no-preset") == {}
    file = tmp_path / "c.yaml"
    file.write_text("env_kwargs: {max_speed: 6.0}\n")
    assert kwargs("--config", str(file)) == {"max_speed": 6.0}  # the file's env_kwargs replace the preset's


def test_a_preset_wrappers_apply_in_the_api_as_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import trpo.config.presets as presets

    entry = {"env_wrappers": [{"gymnasium.wrappers:TimeLimit": {"max_episode_steps": 7}}]}
    monkeypatch.setattr(presets, "_all_presets", lambda: {"trpo": {"Pendulum-v1": entry}})
    agent = TRPO("Pendulum-v1", seed=0)
    try:
        assert agent.env_spec is not None
        assert agent.env_spec.wrappers == (WrapperSpec("gymnasium.wrappers:TimeLimit", {"max_episode_steps": 7}),)
        assert evaluate(agent, episodes=1)["mean_length"] == 7
    finally:
        agent.close()
