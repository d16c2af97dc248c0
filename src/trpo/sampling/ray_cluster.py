"""Sampling on Ray actors (`sampler=ray`): each worker (`trpo.sampling.workers.Worker`) is a Ray actor.

The policy of each update is put in the object store once; the workers' rollouts come back as Ray
results, and the learner builds the batch as every worker sampler does (`trpo.sampling.workers.RemoteSampler`).

Workers are created with `max_restarts=-1, max_task_retries=-1`: a worker whose process dies is
restarted by Ray, and its rollout task re-run there (the restarted worker starts new episodes, and
the learner zeroes those envs' running returns). A worker that cannot come back (restart refused,
node gone) is replaced by a new actor and its share re-sampled. Either way the update is complete.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from gymnasium import spaces

from trpo.config.schema import TRPOConfig
from trpo.core.networks import Actor, Critic
from trpo.core.normalization import ObservationNormalizer, RewardScaler
from trpo.errors import NonFiniteEnvError, TrainingStopped, UserError
from trpo.sampling.envs import EnvFactory
from trpo.sampling.workers import (
    MAX_WORKER_FAILURES,
    PolicyVersion,
    RemoteSampler,
    StaleBatchError,
    Worker,
    WorkerResult,
    check_version,
)

__all__ = ["RaySampler", "StaleBatchError", "check_version", "connect", "import_ray"]


def import_ray() -> ModuleType:
    """The `ray` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("sampler=ray needs Ray, which is not installed: pip install 'trpo[ray]'") from None
    return ray


def connect(ray: ModuleType, address: str) -> bool:
    """Join the Ray cluster at `address`, or start a quiet local instance with this machine's CPUs.

    Returns True if this call connected (so the sampler disconnects at close), False if Ray was
    already initialised in this process (then whoever did it owns the connection).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Workers' stdout/stderr stay in Ray's session logs (/tmp/ray/session_latest/logs); errors reach
    # the learner as exceptions.
    quiet: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), **quiet)
    except ConnectionError as exc:
        raise UserError(
            f"cannot connect to the Ray cluster at ray_address={address!r} ({str(exc).splitlines()[0]}); "
            "start one with `ray start --head`, or leave --ray-address empty for a local instance"
        ) from None
    return True


class RaySampler(RemoteSampler):
    """`sampler=ray`: the workers are Ray actors, on this machine or on a cluster (`ray_address`)."""

    def __init__(
        self,
        config: TRPOConfig,
        env_fn: EnvFactory,
        spaces_: tuple[spaces.Space, spaces.Space],
        actor: Actor,
        critic: Critic,
        obs_normalizer: ObservationNormalizer,
        reward_scaler: RewardScaler,
        cost_critic: Critic | None = None,
    ) -> None:
        super().__init__(config, actor, critic, obs_normalizer, reward_scaler, cost_critic)
        self.ray = ray = import_ray()
        self.env_fn, self.spaces = env_fn, spaces_
        self.workers: list[Any] = []
        self.owns_ray = connect(ray, config.ray_address)
        if not config.ray_address:
            available = float(ray.cluster_resources().get("CPU", 0))
            needed = config.workers * config.worker_cpus
            if needed > available:
                self.close()
                raise UserError(
                    f"workers * worker_cpus = {needed:g} CPUs but the local Ray instance has {available:g}; "
                    "lower --workers or --worker-cpus (e.g. --worker-cpus 0.5), or join a cluster with --ray-address"
                )
        self.remote_worker = ray.remote(Worker).options(
            num_cpus=config.worker_cpus, max_restarts=-1, max_task_retries=-1
        )
        self.workers = [self._new_worker(k) for k in range(config.workers)]

    def _new_worker(self, k: int) -> Any:
        return self.remote_worker.remote(self.config, self.env_fn, self.spaces, k, self.envs_per_worker)

    def close(self) -> None:
        """Stop the workers and, if this sampler started or joined Ray, disconnect."""
        for worker in self.workers:
            self.ray.kill(worker, no_restart=True)
        self.workers = []
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self.owns_ray = False

    def _submit(self, k: int, policy_ref: Any, start_step: int) -> Any:
        seed, force = self._task(k, start_step)
        return self.workers[k].sample.remote(policy_ref, seed, force, start_step)

    def _begin(self, policy: PolicyVersion, start_step: int) -> tuple[Any, dict[int, Any]]:
        """Put `policy` in the object store once and start every worker's task; returns the references."""
        policy_ref = self.ray.put(policy)
        return policy_ref, {k: self._submit(k, policy_ref, start_step) for k in range(len(self.workers))}

    def _end(self, policy: PolicyVersion, start_step: int, handle: tuple[Any, dict[int, Any]]) -> list[WorkerResult]:
        """Every worker's result for the tasks `_begin` started; a worker that died for good is replaced
        and re-run."""
        ray = self.ray
        policy_ref, refs = handle[0], dict(handle[1])
        results: dict[int, WorkerResult] = {}
        failures = dict.fromkeys(refs, 0)
        while refs:
            k = min(refs)
            try:
                results[k] = ray.get(refs.pop(k))
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, (NonFiniteEnvError, UserError)):
                    raise exc.cause from None
                raise
            except ray.exceptions.RayActorError as exc:
                failures[k] += 1
                if failures[k] >= MAX_WORKER_FAILURES:
                    raise TrainingStopped(
                        f"Ray worker {k} died {failures[k]} times while sampling one batch (last: {exc}); "
                        "see the worker logs in /tmp/ray/session_latest/logs"
                    ) from None
                ray.kill(self.workers[k], no_restart=True)
                self.workers[k] = self._new_worker(k)
                refs[k] = self._submit(k, policy_ref, start_step)
        return [results[k] for k in range(len(self.workers))]
