"""Small environments for the observation tests: each can only be solved by reading one kind of observation."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

EPISODE = 8


class PixelSide(gym.Env[np.ndarray, np.int64]):
    """A 16 x 16 grayscale frame with one bright 4 x 4 square on the left or the right half; action 0 (left)
    or 1 (right) earns 1 when it names the square's side. 8 steps; only the pixels tell the side."""

    def __init__(self, channels_first: bool = False) -> None:
        shape = (1, 16, 16) if channels_first else (16, 16, 1)
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(2)
        self.channels_first = channels_first

    def _frame(self) -> np.ndarray:
        frame = np.zeros((16, 16), np.uint8)
        row = int(self.np_random.integers(0, 12))
        col = int(self.np_random.integers(0, 4)) + (8 if self.side else 0)
        frame[row : row + 4, col : col + 4] = 255
        return frame[None] if self.channels_first else frame[..., None]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.side = 0, int(self.np_random.integers(2))
        return self._frame(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(int(action) == self.side)
        self.t += 1
        self.side = int(self.np_random.integers(2))
        return self._frame(), reward, self.t >= EPISODE, False, {}


class DictMode(gym.Env[dict, np.int64]):
    """Dict observation {"mode": Discrete(3), "noise": Box(2)}; reward 1 when the action equals the mode."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {"mode": spaces.Discrete(3), "noise": spaces.Box(-1.0, 1.0, (2,), np.float32)}
        )
        self.action_space = spaces.Discrete(3)

    def _obs(self) -> dict[str, Any]:
        return {"mode": np.int64(self.mode), "noise": self.np_random.uniform(-1, 1, 2).astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.t, self.mode = 0, int(self.np_random.integers(3))
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        reward = float(int(action) == self.mode)
        self.t += 1
        self.mode = int(self.np_random.integers(3))
        return self._obs(), reward, self.t >= EPISODE, False, {}


class MaskedChoiceInfo(gym.Env[np.ndarray, np.int64]):
    """4 actions of which 2 are legal each step (which ones: random, shown in the observation too);
    a legal action earns 1, an illegal one ends the episode with -1 and is counted in `illegal`.
    This one gives its masks in info["action_mask"]; `MaskedChoice` by `action_masks()`."""

    illegal: ClassVar[int] = 0
    legal_steps: ClassVar[int] = 0
    via_info = True

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Discrete(4)

    def _draw(self) -> tuple[np.ndarray, dict]:
        self.mask = np.zeros(4, bool)
        self.mask[self.np_random.choice(4, 2, replace=False)] = True
        info = {"action_mask": self.mask.copy()} if self.via_info else {}
        return self.mask.astype(np.float32), info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._draw()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        if not self.mask[int(action)]:
            MaskedChoiceInfo.illegal += 1
            obs, info = self._draw()
            return obs, -1.0, True, False, info
        MaskedChoiceInfo.legal_steps += 1
        obs, info = self._draw()
        return obs, 1.0, False, self.t >= EPISODE, info


class MaskedChoice(MaskedChoiceInfo):
    """`MaskedChoiceInfo` with sb3-contrib's convention: the legal actions from `action_masks()`."""

    via_info = False

    def action_masks(self) -> np.ndarray:
        return self.mask.copy()


for _cls in (PixelSide, DictMode, MaskedChoiceInfo, MaskedChoice):
    gym.register(f"{_cls.__name__}-v0", entry_point=_cls)
