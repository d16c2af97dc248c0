"""`trpo record`: an MP4 with one frame per reset and step of the policy's episodes, rendered headless."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import REQUIRE_EXTRAS, require
from trpo import TRPO, TRPOConfig, evaluate
from trpo.cli.main import main
from trpo.tools.record import configure_headless_rendering

imageio = require("imageio.v2", "record")
require("imageio_ffmpeg", "record")

HAS_HEADLESS_GL = ctypes.util.find_library("EGL") is not None or ctypes.util.find_library("OSMesa") is not None


def read_frames(path: Path) -> np.ndarray:
    with imageio.get_reader(path) as reader:  # its len() is inf: iterate, not list()
        return np.stack([frame for frame in reader])


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def saved_model(env_id: str, path: Path) -> Path:
    """A freshly initialised policy, saved: its episodes are short, which keeps the videos small."""
    agent = TRPO(env_id, TRPOConfig(n_envs=1, hidden_sizes=(16, 16)), seed=0)
    agent.save(path)
    return path


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_model("CartPole-v1", tmp_path_factory.mktemp("models") / "cartpole")


def test_record_cartpole(cartpole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "videos" / "cartpole.mp4"
    assert main(["record", str(cartpole), "--out", str(out), "--episodes", "2", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    lengths = evaluate(TRPO.load(cartpole), episodes=2, seed=5)["returns"]  # CartPole: return = length
    expected = int(sum(lengths)) + 2  # one frame after each reset, one after each step
    assert f"wrote {out}: 2 episode(s), {expected} frames at 50 fps" in printed
    frames = read_frames(out)
    assert frames.shape == (expected, 400, 600, 3)
    assert frames.mean() > 100 and (frames < 50).mean() > 0.001  # white background, a dark cart: a picture
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 100  # and it moves
    assert not list(out.parent.glob(".*"))  # no temporary file left


def test_record_stochastic_to_the_default_path(cartpole: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", str(cartpole), "--stochastic", "--fps", "10"]) == 0
    assert "at 10 fps" in capsys.readouterr().out
    assert len(read_frames(cartpole / "video.mp4")) >= 2


def run_cli(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trpo", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip


def headless_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    return {**env, **extra}


@pytest.mark.skipif(
    not HAS_HEADLESS_GL and not REQUIRE_EXTRAS,  # CI (make test) installs Mesa's EGL: there it must run
    reason="no EGL or OSMesa library for headless MuJoCo rendering: `make install-render` (or apt-get install "
    "libegl1 libegl-mesa0 libgl1-mesa-dri) enables this test",
)
def test_record_mujoco_headless(tmp_path: Path) -> None:
    model = saved_model("InvertedPendulum-v5", tmp_path / "pendulum")
    out = tmp_path / "pendulum.mp4"
    result = run_cli("record", model, "--out", out, env=headless_environ())  # trpo picks MUJOCO_GL itself
    assert result.returncode == 0, result.stderr
    length = int(evaluate(TRPO.load(model), episodes=1)["mean_length"])
    frames = read_frames(out)
    assert frames.shape == (length + 1, 480, 480, 3)
    assert (frames.max(axis=-1) > 60).mean() > 0.01  # the pole and the cart on the black background


def test_missing_render_backend_is_one_actionable_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """glfw needs a display; without one the error says how to get a headless backend."""
    model = saved_model("InvertedPendulum-v5", tmp_path / "pendulum")
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    monkeypatch.delenv("DISPLAY", raising=False)
    with warnings.catch_warnings():  # glfw's own complaints about the missing display
        warnings.simplefilter("ignore")
        code = main(["record", str(model), "--out", str(tmp_path / "x.mp4")])
    assert_one_line_error(code, capsys.readouterr().err, "MUJOCO_GL=glfw failed", "make install-render")
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["record", "/nonexistent/run"], "does not exist"),
        (["record", "RUN", "--episodes", "0"], "--episodes must be >= 1"),
        (["record", "RUN", "--out", "video.gif"], "must end in .mp4"),
        (["record", "RUN", "--out", "DIR"], "is a directory"),
        (["record", "RUN", "--fps", "0"], "--fps must be >= 1"),
        (["record", "RUN", "--episodes", "two"], "--episodes"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(
    cartpole: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [str(cartpole) if a == "RUN" else str(tmp_path) if a == "DIR" else a for a in args]
    code = main(args)
    assert_one_line_error(code, capsys.readouterr().err, fragment)


def test_missing_extra_names_the_install_command(
    cartpole: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    code = main(["record", str(cartpole)])
    assert_one_line_error(code, capsys.readouterr().err, "pip install 'trpo[record]'")


def test_headless_backends_are_chosen_unless_the_user_chose() -> None:
    environ: dict[str, str] = {}
    assert configure_headless_rendering(environ) in ("egl", "osmesa")
    assert environ["SDL_VIDEODRIVER"] == "dummy"
    environ = {"MUJOCO_GL": "osmesa", "DISPLAY": ":0"}
    assert configure_headless_rendering(environ) == "osmesa" and "SDL_VIDEODRIVER" not in environ
