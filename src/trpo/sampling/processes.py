"""Sampling in local worker processes (`sampler=process`): the Ray sampler's design without Ray.

`workers` processes each own `n_envs / workers` environments and a CPU copy of the actor
(`trpo.sampling.workers.Worker`) and run whole rollouts of the current policy in parallel, one per
core, while the learner fits its critic (`overlap_critic_fit`) or waits; then the learner builds the batch
as every worker sampler does (`trpo.sampling.workers.RemoteSampler`) and takes its policy step while the
workers wait. Unlike `sampler=async` (Gymnasium's
`AsyncVectorEnv`: one process per environment, one round trip per environment step), a worker
exchanges two messages per update, so the simulator, not inter-process traffic, sets the pace.

Processes are started with `spawn` (a fresh interpreter: no forked torch or OpenMP state) and ignore
Ctrl-C: the learner decides when to stop (after the current update). A worker that dies is started
again and its share re-sampled; one that dies `MAX_WORKER_FAILURES` times in one collection stops
training. Workers exit when the learner closes the sampler or its process ends.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
from gymnasium import spaces

from trpo.config.schema import TRPOConfig
from trpo.core.networks import Actor, Critic
from trpo.core.normalization import ObservationNormalizer, RewardScaler
from trpo.errors import NonFiniteEnvError, TrainingStopped, UserError
from trpo.sampling.envs import EnvFactory
from trpo.sampling.workers import MAX_WORKER_FAILURES, PolicyVersion, RemoteSampler, Worker, WorkerResult


def serve(conn: Connection, payload: bytes, index: int, n_envs: int) -> None:
    """A worker process: build the Worker, then answer sampling tasks until the learner closes the pipe.

    Messages are pickled by the standard pickler (tensors travel by value, no shared-memory handles):
    in, `(policy, env_seed, force_reset, start_step)`; out, `("ready", pid)` once, then
    `("ok", WorkerResult)`, `("nonfinite", message, env_index, step)`, `("usererror", message)` or
    `("error", traceback)` per task (and `("usererror", message)` when the worker cannot start for the user's reason).
    """
    config, env_fn, spaces_ = cloudpickle.loads(payload)
    try:
        worker = Worker(config, env_fn, spaces_, index, n_envs)
    except UserError as exc:  # e.g. the environment's module cannot be imported: one line for the user
        conn.send_bytes(pickle.dumps(("usererror", str(exc))))
        return
    except Exception:
        conn.send_bytes(pickle.dumps(("error", traceback.format_exc())))
        return
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            task = pickle.loads(conn.recv_bytes())
        except EOFError:  # the learner is gone
            return
        try:
            reply: tuple[Any, ...] = ("ok", worker.sample(*task))
        except NonFiniteEnvError as exc:
            reply = ("nonfinite", str(exc), exc.env_index, exc.step)
        except UserError as exc:  # e.g. an environment that broke its contract
            reply = ("usererror", str(exc))
        except Exception:
            reply = ("error", traceback.format_exc())
        try:
            conn.send_bytes(pickle.dumps(reply))
        except OSError:  # the learner closed the pipe (it stopped on another worker's error)
            return


class WorkerDied(Exception):
    """A worker process ended (or its pipe broke) before answering."""


class ProcessSampler(RemoteSampler):
    """`sampler=process`: the workers are local processes, one rollout each per update."""

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
        # cloudpickle: environment factories may be lambdas or closures (as with AsyncVectorEnv)
        self.payload = cloudpickle.dumps((config, env_fn, spaces_))
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = [None] * config.workers
        self.conns: list[Connection | None] = [None] * config.workers
        try:
            for k in range(config.workers):
                self._start(k)
            for k in range(config.workers):
                self._wait_ready(k)
        except BaseException:
            self.close()
            raise

    def _start(self, k: int) -> None:
        """Start worker k's process (it builds its environments and says when it is ready)."""
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=serve, args=(child, self.payload, k, self.envs_per_worker), name=f"trpo-sampler-{k}", daemon=True
        )
        # The child inherits an ignored SIGINT from its first instruction on (Python keeps SIG_IGN), so
        # Ctrl-C reaches only the learner, which stops after the current update.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, previous)
        child.close()
        self.processes[k], self.conns[k] = process, parent

    def _receive(self, k: int) -> tuple[Any, ...]:
        conn = self.conns[k]
        assert conn is not None
        try:
            message: tuple[Any, ...] = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"worker {k} (pid {self.processes[k].pid}) ended: {exc or 'pipe closed'}") from None
        return message

    def _wait_ready(self, k: int, replacing: WorkerDied | None = None) -> None:
        """Wait for worker k's ready message; `replacing` is the death of the worker it replaces mid-run."""
        try:
            message = self._receive(k)
        except WorkerDied:
            process = self.processes[k]
            process.join(timeout=5)
            if replacing is not None:  # the first start worked, so the script's main guard is not the cause
                raise WorkerDied(
                    f"worker {k} died again: its replacement exited (code {process.exitcode}) before it was ready "
                    f"(pid {process.pid})"
                ) from None
            raise TrainingStopped(
                f"sampler worker {k} exited (code {process.exitcode}) before it was ready. Workers are started "
                "with 'spawn' and import the main module: a script that trains with sampler=process must do so "
                "under `if __name__ == '__main__':`"
            ) from None
        if message[0] == "error":
            raise TrainingStopped(f"sampler worker {k} could not start:\n{message[1]}")
        if message[0] == "usererror":
            raise UserError(message[1])

    def _send(self, k: int, task: tuple[Any, ...]) -> None:
        conn = self.conns[k]
        assert conn is not None
        try:
            conn.send_bytes(pickle.dumps(task))
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(f"worker {k} (pid {self.processes[k].pid}) ended: {exc}") from None

    def _stop(self, k: int) -> None:
        """End worker k's process: its pipe is closed, so it returns at its next receive or send (or is killed)."""
        process, conn = self.processes[k], self.conns[k]
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self.processes[k], self.conns[k] = None, None

    def _submit(self, k: int, policy: PolicyVersion, start_step: int) -> None:
        seed, force = self._task(k, start_step)
        self._send(k, (policy, seed, force, start_step))

    def _replace(self, k: int, failures: list[int], error: WorkerDied) -> None:
        """Start a new worker k after its process died; a replacement that dies while starting counts as
        another death. At MAX_WORKER_FAILURES deaths in one collection, training stops (`TrainingStopped`,
        after which the learner writes a checkpoint)."""
        while True:
            if failures[k] >= MAX_WORKER_FAILURES:
                raise TrainingStopped(
                    f"sampler worker {k} died {failures[k]} times while sampling one batch (last: {error})"
                )
            self._stop(k)
            self._start(k)
            try:
                self._wait_ready(k, replacing=error)
                return
            except WorkerDied as exc:
                failures[k] += 1
                error = exc

    def _begin(self, policy: PolicyVersion, start_step: int) -> None:
        """Send `policy` to every worker; they sample while the learner goes on."""
        for k in range(len(self.processes)):
            with contextlib.suppress(WorkerDied):  # a dead worker is found at its receive in `_end`
                self._submit(k, policy, start_step)

    def _end(self, policy: PolicyVersion, start_step: int, handle: None) -> list[WorkerResult]:
        """Take the workers' results in order; a dead worker is restarted and re-run."""
        failures = [0] * len(self.processes)
        messages = [self._answer(k, policy, start_step, failures) for k in range(len(self.processes))]
        # every answer is read before any error is raised: no worker's reply is left in its pipe to be
        # taken for the next collection's (with on_nonfinite=skip_batch training goes on after the error)
        for k, message in enumerate(messages):
            if message[0] == "nonfinite":
                raise NonFiniteEnvError(message[1], env_index=message[2], step=message[3])
            if message[0] == "usererror":
                raise UserError(message[1])
            if message[0] == "error":
                raise TrainingStopped(f"sampler worker {k} failed:\n{message[1]}")
        return [message[1] for message in messages]

    def _answer(self, k: int, policy: PolicyVersion, start_step: int, failures: list[int]) -> tuple[Any, ...]:
        """Worker k's reply to the task just sent; a worker that died meanwhile is replaced and asked again."""
        while True:
            try:
                return self._receive(k)
            except WorkerDied as exc:
                failures[k] += 1
                self._replace(k, failures, exc)
                with contextlib.suppress(WorkerDied):
                    self._submit(k, policy, start_step)

    def close(self) -> None:
        """Stop every worker process."""
        for k in range(len(self.processes)):
            self._stop(k)
