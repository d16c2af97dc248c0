"""`device`: resolved against this machine, refused in one line when absent; the update on the device and
rollouts on CPU copies refreshed after each update (exercised on the CPU by forcing the copies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from conftest import collect
from trpo import PPO, TRPO, TRPOConfig, load
from trpo.algos import learner
from trpo.core.device import resolve_device
from trpo.errors import ConfigError

SMALL = TRPOConfig(n_envs=2, n_steps=64, vf_epochs=2, vf_minibatch_size=32)


def test_device_names_resolve_against_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available on this machine"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"device must be auto, cpu, cuda or cuda:N \(got 'tpu'\)"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="device must be auto"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="has 1 CUDA device"):
        resolve_device("cuda:1")


def test_rollout_copies_give_the_same_run_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a GPU takes (update on the device's networks, rollouts on refreshed CPU copies), forced on
    the CPU: the copies must always equal the networks, so the run is identical to the shared one."""
    for cls in (TRPO, PPO):
        shared = cls("Pendulum-v1", SMALL, seed=3).learn(4 * SMALL.batch_size)
        monkeypatch.setattr(learner, "needs_rollout_copy", lambda device: True)
        copied = cls("Pendulum-v1", SMALL, seed=3)
        assert copied.rollout_actor is not copied.actor and copied.rollout_critic is not copied.critic
        copied.learn(4 * SMALL.batch_size)
        monkeypatch.undo()
        for a, b in ((copied.actor, copied.rollout_actor), (copied.critic, copied.rollout_critic)):
            assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
        for a, b in zip(shared.actor.parameters(), copied.actor.parameters(), strict=True):
            assert torch.equal(a, b)


class DeviceLog(TorchFunctionMode):
    """Records the device of every tensor a torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[torch.device] = set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.devices.add(t.device)
        return out


def test_every_tensor_of_an_update_is_on_the_configured_device() -> None:
    agent = TRPO("Pendulum-v1", SMALL, seed=0)
    batch = collect(agent)
    with DeviceLog() as log:
        agent.update(batch)
    assert log.devices == {agent.device}
    assert {p.device for p in agent.actor.parameters()} == {agent.device}


def test_a_model_saved_on_a_device_this_machine_lacks_loads_on_the_cpu(tmp_path: Path) -> None:
    TRPO("CartPole-v1", SMALL, seed=0).save(tmp_path / "m")
    state = tmp_path / "m" / "state.json"
    import json

    data = json.loads(state.read_text())
    data["config"]["device"] = "cuda:7"
    # the state file is hashed with the model file only; the JSON itself may be edited like this
    state.write_text(json.dumps(data))
    agent = load(tmp_path / "m")
    assert agent.device == torch.device("cpu") and agent.config.device == "cpu"
