"""The `trpo` command: smoke runs, the run directory contract, and bad input (one line, exit 2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trpo import TRPOConfig
from trpo.cli.main import main
from trpo.config.presets import preset_config

TRPO = [sys.executable, "-m", "trpo"]
DIAGNOSTICS = [
    "rollout/ep_return_mean", "rollout/ep_len_mean", "train/kl", "train/kl_max", "train/surrogate_gain",
    "train/expected_gain", "train/entropy", "train/policy_std", "train/cg_iters", "train/cg_residual",
    "train/step_norm", "train/backtracks", "train/line_search_success", "train/value_loss",
    "train/explained_variance", "train/adv_mean", "train/adv_std", "time/steps", "time/fps",
    "time/rollout_s", "time/update_s",
]  # fmt: skip


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRPO, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "pendulum"
    result = run("train", "Pendulum-v1", "--total-steps", "1024", "--n-envs", "2", "--n-steps", "256",
                 "--eval-episodes", "2", "--run-dir", run_dir, "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "preset: Pendulum-v1" in result.stderr
    return run_dir


def test_run_directory_contract(pendulum_run: Path) -> None:
    names = {p.name for p in pendulum_run.iterdir()}
    assert {"config.yaml", "progress.csv", "summary.json", "checkpoint"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert {p.name for p in (pendulum_run / "checkpoint").iterdir()} == {"model.safetensors", "state.json"}
    with open(pendulum_run / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and set(DIAGNOSTICS) <= set(rows[0])
    assert [float(r["time/steps"]) for r in rows] == [512.0, 1024.0]
    summary = json.loads((pendulum_run / "summary.json").read_text())
    for key in (
        "env_id",
        "algo",
        "seed",
        "total_steps",
        "wall_time_s",
        "steps_per_s",
        "mean_return",
        "std_return",
        "eval_episodes",
    ):
        assert key in summary
    assert summary["env_id"] == "Pendulum-v1" and summary["total_steps"] == 1024 and summary["eval_episodes"] == 2


def test_config_yaml_reruns_the_same_config(pendulum_run: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((pendulum_run / "config.yaml").read_text())
    # the flag and the preset are both recorded
    preset_gamma = preset_config("Pendulum-v1")[0].gamma
    assert config["n_steps"] == 256 and config["gamma"] == preset_gamma != TRPOConfig().gamma
    from trpo.config.schema import load_yaml_config

    assert load_yaml_config(pendulum_run / "config.yaml").n_envs == 2


def test_tensorboard_has_the_same_keys(pendulum_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(pendulum_run))
    events.Reload()
    assert set(DIAGNOSTICS) <= set(events.Tags()["scalars"])


def test_eval_json(pendulum_run: Path) -> None:
    result = run("eval", pendulum_run, "--episodes", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["episodes"] == 2 and {"mean_return", "std_return"} <= set(data)
    assert -2000 < data["mean_return"] < 0


def test_flags_override_config_file_which_overrides_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trpo.cli.train import _parse_train

    file = tmp_path / "c.yaml"
    file.write_text("max_kl: 0.03\nn_steps: 64\n")
    args, preset, _ = _parse_train(["Pendulum-v1", "--config", str(file), "--n-steps", "32"])
    assert preset == "Pendulum-v1"
    assert args.hp.gamma == preset_config("Pendulum-v1")[0].gamma != TRPOConfig().gamma  # preset
    assert args.hp.max_kl == 0.03  # file over preset
    assert args.hp.n_steps == 32  # flag over file


def test_no_preset_starts_from_the_defaults(tmp_path: Path) -> None:
    from trpo import TRPOConfig
    from trpo.cli.train import _parse_train

    file = tmp_path / "c.yaml"
    file.write_text("max_kl: 0.03\n")
    args, preset, _ = _parse_train(["Pendulum-v1", "--no-preset", "--config", str(file), "--n-steps", "32"])
    defaults = TRPOConfig()
    assert preset is None
    assert (args.hp.gamma, args.hp.use_sde, args.hp.n_envs) == (defaults.gamma, defaults.use_sde, defaults.n_envs)
    assert (args.hp.max_kl, args.hp.n_steps) == (0.03, 32)  # --config and flags still apply
    args, _, _ = _parse_train(["CartPole-v1", "--no-preset", "--algo", "ppo"])
    assert args.hp.algo == "ppo" and args.hp.n_envs == defaults.n_envs  # not PPO's CartPole preset


def test_help_lists_every_config_field() -> None:
    import dataclasses

    from trpo import TRPOConfig

    result = run("train", "--help")
    assert result.returncode == 0
    for field in dataclasses.fields(TRPOConfig):
        assert "--" + field.name.replace("_", "-") in result.stdout


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("train", "usage: trpo train [-h] [OPTIONS] ENV_ID"),
        ("eval", "usage: trpo eval [-h] [OPTIONS] RUN_DIR"),
        ("plot", "usage: trpo plot [-h] [OPTIONS] RUN_DIR [RUN_DIR ...]"),
        (
            "export",
            "usage: trpo export [-h] RUN_DIR [--format {onnx}] [--out FILE] [--samples INT] [--force | --no-force]",
        ),
        ("compare", "usage: trpo compare [-h] [OPTIONS] ENV_ID"),
        ("tune", "usage: trpo tune [-h] [OPTIONS] ENV_ID"),
    ],
)
def test_help_usage_line_reads_as_a_person_writes_it(
    command: str, usage: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == usage
    assert "{None}" not in out and "[[" not in out and " STR]" not in out.splitlines()[0]


def test_help_for_an_env_shows_its_preset_defaults() -> None:
    import re

    def n_envs_default(*argv: str) -> str:
        result = run("train", *argv, "--help")
        assert result.returncode == 0
        text = re.sub(r"[│\s]+", " ", result.stdout)
        match = re.search(r"--n-envs INT .*?\(default: (\d+)\)", text)
        assert match is not None, text
        return match.group(1)

    assert n_envs_default() == "16"  # TRPOConfig's default
    assert n_envs_default("CartPole-v1") == "8"  # the CartPole-v1 preset


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "NoSuchEnv-v0"], ["unknown environment id 'NoSuchEnv-v0'"]),
        (["train", "CartPole-v1", "--max-kl", "0"], ["max_kl must be > 0"]),
        (["train", "CartPole-v1", "--max-kl", "-1"], ["max_kl must be > 0"]),
        (["train", "CartPole-v1", "--gamma", "1.5"], ["gamma must be in (0, 1]"]),
        (["train", "CartPole-v1", "--gamma", "0"], ["gamma must be in (0, 1]"]),
        (["train", "CartPole-v1", "--gae-lambda", "2"], ["gae_lambda must be in [0, 1]"]),
        (["train", "CartPole-v1", "--n-steps", "0"], ["n_steps must be >= 1"]),
        (["train", "CartPole-v1", "--n-envs", "0"], ["n_envs must be >= 1"]),
        (["train", "CartPole-v1", "--hidden-sizes"], ["hidden_sizes must be a non-empty list"]),
        (["train", "CartPole-v1", "--hidden-sizes", "64", "0"], ["hidden_sizes must be a non-empty list"]),
        (
            ["train", "CartPole-v1", "--activation", "swish"],
            ["activation 'swish' is not an element-wise torch.nn activation"],
        ),
        (["train", "CartPole-v1", "--cg-iters", "0"], ["cg_iters must be >= 1"]),
        (["train", "CartPole-v1", "--backtrack-coef", "1.5"], ["backtrack_coef must be in (0, 1)"]),
        (["train", "CartPole-v1", "--n-envs", "two"], ["--n-envs"]),
        (["train", "CartPole-v1", "--no-such-flag"], ["Unrecognized options: --no-such-flag"]),
        (["train", "CartPole-v1", "--cnn", "huge"], ["--cnn"]),
        (["train", "--resume", "/nonexistent/run"], ["does not exist"]),
        (["train"], ["needs an environment id"]),
        (["eval", "/nonexistent/run"], ["does not exist"]),
        (["frobnicate"], ["unknown command"]),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    assert_clean_error(
        run(*args, *(["--run-dir", tmp_path / "r"] if args[:1] == ["train"] and len(args) > 1 else [])), *fragments
    )
    assert not (tmp_path / "r").exists()  # nothing was written


def test_unsupported_action_space_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "tuple_env.py"
    script.write_text(
        "import gymnasium as gym, numpy as np\n"
        "class TupleEnv(gym.Env):\n"
        "    observation_space = gym.spaces.Box(-1, 1, (2,))\n"
        "    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))\n"
        "gym.register('TupleAction-v0', entry_point=TupleEnv)\n"
        "from trpo.cli.main import main\n"
        "import sys\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run([sys.executable, str(script), "train", "TupleAction-v0", "--run-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert_clean_error(result, "unsupported action space", "Tuple")


def test_resume_of_a_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("not a run")
    assert_clean_error(run("train", "--resume", tmp_path), "holds no checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_wrong_yaml_type_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("n_envs: many\n")
    assert_clean_error(
        run("train", "CartPole-v1", "--config", file, "--run-dir", tmp_path / "r"), "n_envs must be an integer"
    )


def test_force_replaces_a_previous_run(pendulum_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    for f in ("config.yaml", "progress.csv"):
        (target / f).write_bytes((pendulum_run / f).read_bytes())
    (target / "notes.txt").write_text("mine")
    refused = run("train", "CartPole-v1", "--run-dir", target, "--total-steps", "256", "--quiet")
    assert_clean_error(refused, "holds a previous run", f"trpo train --resume {target}")
    result = run(
        "train",
        "CartPole-v1",
        "--run-dir",
        target,
        "--total-steps",
        "256",
        "--force",
        "--eval-episodes",
        "0",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    with open(target / "progress.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1  # the old rows are gone, the new run's row is there
    assert (target / "notes.txt").read_text() == "mine"  # files that are not the run's are kept


def test_eval_of_run_without_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("max_kl: 0.01\n")
    assert_clean_error(run("eval", tmp_path), "holds no checkpoint")


def test_existing_run_dir_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    result = run("train", "CartPole-v1", "--run-dir", tmp_path, "--total-steps", "256")
    assert_clean_error(result, "is not an empty directory", "--force")
    assert (tmp_path / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_main_returns_2_on_unknown_yaml_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("max_kll: 0.1\n")
    assert main(["train", "CartPole-v1", "--config", str(file), "--run-dir", str(tmp_path / "r")]) == 2
    assert "unknown config key 'max_kll'" in capsys.readouterr().err
