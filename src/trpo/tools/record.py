"""`trpo record`: episodes of a run's policy rendered to one MP4 file, on a machine without display or GPU.

Frames come from the environment's `render_mode="rgb_array"` (pygame surfaces for classic control,
MuJoCo's offscreen renderer for MuJoCo) and go straight to ffmpeg through imageio (the ffmpeg binary
ships inside the imageio-ffmpeg wheel), one frame after each reset and each step, all episodes in one
file. Gymnasium's RecordVideo wrapper would need moviepy and writes one file per episode.

MuJoCo needs an OpenGL context without a window: `MUJOCO_GL=egl` (Mesa's EGL renders in software when
there is no GPU) or `osmesa`. Unless the user chose one, `configure_headless_rendering` picks EGL, or
OSMesa where only OSMesa is installed, before any MuJoCo environment is made.
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import functools
import os
import warnings
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import gymnasium as gym
import numpy as np
import tyro

from trpo.errors import UserError
from trpo.run.evaluation import episode_seeds, play_episode
from trpo.run.run_dir import check_output
from trpo.sampling.contract import ContractChecker
from trpo.sampling.env_spec import EnvFlags, EnvSpec
from trpo.sampling.envs import make_env

if TYPE_CHECKING:
    from trpo.algos.learner import Learner

INSTALL_HINT = "pip install 'trpo[record]'"
RENDER_HINT = (
    "install a headless OpenGL library: `make install-render` (Debian/Ubuntu: apt-get install libegl1 "
    "libegl-mesa0 libgl1-mesa-dri), or libosmesa6 with MUJOCO_GL=osmesa"
)


@dataclasses.dataclass(frozen=True)
class RecordArgs:
    """Render episodes of the trained policy of a run directory to an MP4 video (no display needed)."""

    run_dir: tyro.conf.Positional[Path]
    """Run directory written by `trpo train` (or a saved model directory)."""
    out: Path | None = None
    """Output MP4 file (default: RUN_DIR/video.mp4)."""
    force: bool = False
    """Replace --out if it exists (a run's own files are never replaced)."""
    episodes: int = 1
    """Number of episodes, one after the other in the same video."""
    seed: int | None = None
    """Seed of the first episode; the next are seed + 1, ... (default: the run's evaluation seeds, as `trpo eval`)."""
    stochastic: bool = False
    """Sample actions instead of taking the most likely one."""
    fps: int | None = None
    """Frames per second of the video (default: the environment's render_fps)."""
    camera: str | None = None
    """MuJoCo camera: a camera name of the model or its number, or 'free' (the environment's default view);
    default: the model's 'track' camera, which follows the agent, where it has one (locomotion tasks)."""
    width: int | None = None
    """Frame width in pixels (MuJoCo environments; default: the environment's, 480)."""
    height: int | None = None
    """Frame height in pixels (MuJoCo environments; default: the environment's, 480)."""
    env: Annotated[EnvFlags, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=EnvFlags)
    """The environment (default: the one the run recorded)."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """What `record` wrote: the file, its frame count and rate, and each episode's return and length."""

    path: Path
    frames: int
    fps: int
    returns: list[float]
    lengths: list[int]


def configure_headless_rendering(environ: MutableMapping[str, str] = os.environ) -> str:
    """Choose rendering backends that need no display, unless the user chose: MUJOCO_GL=egl (osmesa when
    only libOSMesa is installed), and SDL's dummy video driver for pygame when there is no display.
    Must run before MuJoCo's renderer is created. Returns the MuJoCo backend."""
    if not environ.get("MUJOCO_GL"):
        has_egl = ctypes.util.find_library("EGL") is not None
        environ["MUJOCO_GL"] = "osmesa" if not has_egl and ctypes.util.find_library("OSMesa") else "egl"
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return environ["MUJOCO_GL"]


def require_imageio() -> Any:
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        raise UserError(f"trpo record needs {exc.name}: {INSTALL_HINT}") from None
    return imageio


def check_renders(env: gym.Env, seed: int) -> None:
    """Reset and render once, turning a missing renderer into a UserError that says how to get one."""
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    try:
        env.reset(seed=seed)
        frame = env.render()
    except gym.error.DependencyNotInstalled as exc:
        raise UserError(f"rendering {name} needs a missing package: {exc}") from None
    except Exception as exc:  # MuJoCo's GL context: ImportError, mujoco.FatalError, AttributeError, ...
        if "mujoco" not in type(env.unwrapped).__module__:
            raise
        backend = os.environ.get("MUJOCO_GL")
        raise UserError(
            f"rendering {name} with MUJOCO_GL={backend} failed ({type(exc).__name__}: {exc}); {RENDER_HINT}"
        ) from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise UserError(f"{name} did not render an RGB image with render_mode='rgb_array' (got {type(frame)})")


def record(
    agent: Learner,
    out: str | Path,
    episodes: int = 1,
    seed: int | None = None,
    deterministic: bool = True,
    fps: int | None = None,
    make_env: Callable[[], gym.Env] | None = None,
    camera: str | None = None,
    width: int | None = None,
    height: int | None = None,
    force: bool = False,
) -> Recording:
    """Render `episodes` episodes of `agent`'s policy into the MP4 file `out` (written beside it, then
    moved into place). `make_env` makes the environment with `render_mode="rgb_array"` (default: the
    agent's env spec, with the MuJoCo `camera`, `width` and `height`; see `render_factory`). Episodes are
    seeded `seed, seed + 1, ...` (default: the run's evaluation stream, as `trpo eval`)."""
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1 (got {episodes})")
    if fps is not None and fps < 1:
        raise UserError(f"--fps must be >= 1 (got {fps})")
    imageio = require_imageio()
    configure_headless_rendering()
    if make_env is None:
        if agent.env_spec is None:
            agent.env_fn()  # says how to give an environment that could not be recorded
            raise UserError("this model's environment could not be recorded: pass make_env=")
        make_env = render_factory(agent.env_spec, camera, width, height)
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out / 'video.mp4'}")
    if out.suffix.lower() != ".mp4":
        raise UserError(f"--out {out} must end in .mp4")
    check_output(out, force)  # never a run's own file; an existing file only with force
    seeds = episode_seeds(agent.config.seed, episodes, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. MuJoCo models' deprecation notices
        try:
            env = ContractChecker(make_env(), 0)
        except RuntimeError as exc:  # `import mujoco` refuses an invalid MUJOCO_GL
            if "MUJOCO_GL" not in str(exc):
                raise
            raise UserError(f"{exc}; use MUJOCO_GL=egl or osmesa (headless) or glfw (with a display)") from None
    try:
        check_renders(env, seeds[0])
        rate = fps or int(env.metadata.get("render_fps") or 30)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp.mp4")
        returns: list[float] = []
        lengths: list[int] = []
        frames = 0
        try:
            writer = imageio.get_writer(tmp, format="FFMPEG", fps=rate, codec="libx264", macro_block_size=2)
            try:
                for episode_seed in seeds:
                    total, length = play_episode(
                        agent, env, episode_seed, deterministic, after_step=lambda: writer.append_data(env.render())
                    )
                    frames += length + 1  # the reset's frame and one per step
                    returns.append(total)
                    lengths.append(length)
            finally:
                writer.close()
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        env.close()
    return Recording(out, frames, rate, returns, lengths)


TRACKING_CAMERA = "track"
"""The camera of Gymnasium's MuJoCo locomotion models that follows the agent's centre of mass."""


def render_factory(
    spec: EnvSpec, camera: str | None = None, width: int | None = None, height: int | None = None
) -> Callable[[], gym.Env]:
    """A factory of `spec`'s environment rendering RGB frames: `camera` (a MuJoCo camera name or number,
    or 'free') and `width`/`height` become the MuJoCo env kwargs camera_name/camera_id, width, height.
    Without `camera`, a MuJoCo model's 'track' camera is used where it has one, so the video follows the agent."""
    for name, value in (("--width", width), ("--height", height)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be >= 1 (got {value})")
    overrides: dict[str, Any] = {"render_mode": "rgb_array"}
    overrides.update({k: v for k, v in (("width", width), ("height", height)) if v is not None})
    if camera is not None and camera != "free":
        overrides.update({"camera_id": int(camera)} if camera.isdigit() else {"camera_name": camera})
    if camera is None and "camera_id" not in spec.kwargs and "camera_name" not in spec.kwargs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = make_env(spec)
        try:
            if _has_camera(probe, TRACKING_CAMERA):
                overrides["camera_name"] = TRACKING_CAMERA
        finally:
            probe.close()
    return functools.partial(make_env, spec, **overrides)


def _has_camera(env: gym.Env, name: str) -> bool:
    """Whether `env` is a MuJoCo environment whose model has a camera called `name`."""
    model = getattr(env.unwrapped, "model", None)
    if model is None or "mujoco" not in type(env.unwrapped).__module__:
        return False
    import mujoco

    return bool(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) >= 0)
