"""Running experiments away from the event loop: one seam, a subprocess executor, a pool adapter.

Every experiment goes through ``ExperimentExecutor.run(job)``. ``SubprocessExecutor`` starts a
fresh interpreter per experiment (``python -m hydra_engine.agent.experiment_worker job.json``,
exec'd, never a fork of the engine or TUI process) in its own session, writes its output to the
experiment's log file (never the terminal), and kills the whole process group at the time
limit. ``PoolExecutor`` adapts anything with ``submit(fn, *args) -> Future`` (a spawn/forkserver
``ProcessPoolExecutor``, or a Dask/Ray client's executor): there a late experiment cannot be
killed, so it is abandoned and its eventual result ignored.

Neither blocks the event loop: waiting is ``await``; the parent only reads small JSON files.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

WORKER_MODULE = "hydra_engine.agent.experiment_worker"
DEFAULT_ENTRY = "hydra_engine.agent.experiment_worker:evaluate_candidate"
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class ExperimentStatus(StrEnum):
    OK = "OK"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    ABANDONED = "ABANDONED"


@dataclass(frozen=True, slots=True)
class ExperimentJob:
    """What to run. ``entry`` is ``"module:function"`` called as ``fn(params, inputs, work_dir)``.

    ``inputs_path``: a pickle the parent wrote (feature frame, labels, returns), or None.
    ``work_dir``: this experiment's own directory (job, result, log, model files).
    """

    experiment_id: str
    params: dict[str, Any]
    work_dir: str
    time_limit_s: float
    inputs_path: str | None = None
    entry: str = DEFAULT_ENTRY
    extra_sys_path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise ValueError(f"experiment {self.experiment_id}: time_limit_s must be > 0, got {self.time_limit_s}")
        if ":" not in self.entry:
            raise ValueError(f"experiment {self.experiment_id}: entry must be 'module:function', got {self.entry!r}")

    @property
    def job_path(self) -> Path:
        return Path(self.work_dir) / "job.json"

    @property
    def result_path(self) -> Path:
        return Path(self.work_dir) / "result.json"

    @property
    def log_path(self) -> Path:
        return Path(self.work_dir) / "experiment.log"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "params": self.params,
            "work_dir": self.work_dir,
            "time_limit_s": self.time_limit_s,
            "inputs_path": self.inputs_path,
            "entry": self.entry,
            "extra_sys_path": list(self.extra_sys_path),
        }


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """How an experiment ended. ``result`` is the entry function's JSON output when OK."""

    experiment_id: str
    status: ExperimentStatus
    duration_s: float
    result: dict[str, Any] | None = None
    error: str | None = None
    log_path: str | None = None
    returncode: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is ExperimentStatus.OK


class ExperimentExecutor(Protocol):
    """The seam every experiment passes through (local subprocesses, a cluster, ...)."""

    async def run(self, job: ExperimentJob) -> ExperimentResult:
        """Run ``job`` to completion, error or its time limit; never raises for a failed job."""
        ...

    async def shutdown(self) -> None:
        """Stop everything still running (killed or abandoned)."""
        ...


def read_result(job: ExperimentJob) -> tuple[dict[str, Any] | None, str | None]:
    """(result, error) from the worker's result file; a missing or bad file is an error."""
    try:
        doc = json.loads(job.result_path.read_text())
    except FileNotFoundError:
        return None, f"worker wrote no result file ({job.result_path.name}); see {job.log_path}"
    except json.JSONDecodeError as exc:
        return None, f"{job.result_path}: invalid JSON at line {exc.lineno}"
    if doc.get("ok"):
        return doc.get("result") or {}, None
    return None, str(doc.get("error") or "worker reported failure without a message")


def _tail(path: Path, n_bytes: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


PARENT_PID_ENV = "HYDRA_WORKER_PARENT_PID"
"""The engine's pid, given to each worker: the worker exits as soon as its parent is gone."""


def _lease_path(lease_dir: Path, pid: int) -> Path:
    return Path(lease_dir) / f"worker-{pid}.lease"


def _is_worker(pid: int) -> bool:
    """``pid`` is alive (not a zombie) and runs the experiment worker (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and WORKER_MODULE in cmdline


def reap_stray_workers(lease_dir: Path) -> list[int]:
    """Kill (process group, SIGKILL) every worker a dead engine left behind in ``lease_dir``;
    returns their pids. Blocking (reads /proc): call via a thread, once, before experiments start."""
    reaped: list[int] = []
    for lease in sorted(Path(lease_dir).glob("worker-*.lease")):
        try:
            pid = int(json.loads(lease.read_text()).get("pid", 0))
        except (OSError, ValueError, AttributeError):
            pid = 0
        if pid > 1 and pid != os.getpid() and _is_worker(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            reaped.append(pid)
            log.warning("experiment.stray_worker_reaped", pid=pid, lease=str(lease))
        with contextlib.suppress(OSError):
            lease.unlink()
    return reaped


class SubprocessExecutor:
    """One fresh interpreter per experiment, at most ``max_parallel`` at a time, killed at its limit.

    Workers are tied to the engine's life: each gets the engine's pid and exits when it is gone
    (``experiment_worker``: parent-death signal and a watchdog), and with ``lease_dir`` each
    leaves a lease file while it runs, so ``reap_stray_workers`` can kill any a crash left."""

    def __init__(self, max_parallel: int = 2, python: str = sys.executable, kill_grace_s: float = 2.0,
                 lease_dir: Path | None = None) -> None:  # fmt: skip
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
        self._sem = asyncio.Semaphore(max_parallel)
        self._python = python
        self._grace = kill_grace_s
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self.lease_dir = Path(lease_dir) if lease_dir is not None else None

    @property
    def running(self) -> list[str]:
        return list(self._procs)

    def _env(self, job: ExperimentJob) -> dict[str, str]:
        env = dict(os.environ)
        paths = [_PROJECT_ROOT, *job.extra_sys_path]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env[PARENT_PID_ENV] = str(os.getpid())
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        return env

    async def run(self, job: ExperimentJob) -> ExperimentResult:
        async with self._sem:
            return await self._run(job)

    @staticmethod
    def _prepare_files(job: ExperimentJob) -> Any:
        Path(job.work_dir).mkdir(parents=True, exist_ok=True)
        job.job_path.write_text(json.dumps(job.to_dict(), indent=2, default=str))
        with contextlib.suppress(FileNotFoundError):
            job.result_path.unlink()
        return open(job.log_path, "ab")

    async def _run(self, job: ExperimentJob) -> ExperimentResult:
        started = time.monotonic()
        log_fh = await asyncio.to_thread(self._prepare_files, job)
        try:
            proc = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                WORKER_MODULE,
                str(job.job_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fh,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env=self._env(job),
                cwd=job.work_dir,
            )
        except OSError as exc:
            log_fh.close()
            return ExperimentResult(job.experiment_id, ExperimentStatus.ERROR, time.monotonic() - started, error=f"cannot start worker: {exc}", log_path=str(job.log_path))
        self._procs[job.experiment_id] = proc
        lease = self._write_lease(proc.pid, job)
        log.info("experiment.started", experiment_id=job.experiment_id, pid=proc.pid, time_limit_s=job.time_limit_s, log_path=str(job.log_path))
        try:
            try:
                rc = await asyncio.wait_for(proc.wait(), timeout=job.time_limit_s)
            except TimeoutError:
                await self._kill(proc)
                duration = time.monotonic() - started
                log.warning("experiment.timeout", experiment_id=job.experiment_id, time_limit_s=job.time_limit_s)
                return ExperimentResult(
                    job.experiment_id,
                    ExperimentStatus.TIMEOUT,
                    duration,
                    error=f"killed after its time limit of {job.time_limit_s:g} s",
                    log_path=str(job.log_path),
                    returncode=proc.returncode,
                )
            except asyncio.CancelledError:
                await asyncio.shield(self._kill(proc))
                raise
        finally:
            log_fh.close()
            self._procs.pop(job.experiment_id, None)
            if lease is not None:
                with contextlib.suppress(OSError):
                    lease.unlink()
        duration = time.monotonic() - started
        result, error = await asyncio.to_thread(read_result, job)
        if rc != 0 and error is None:
            error = f"worker exited with code {rc}"
        if error is not None:
            tail = _tail(job.log_path)
            log.warning("experiment.error", experiment_id=job.experiment_id, returncode=rc, error=error.splitlines()[-1] if error else "")
            return ExperimentResult(job.experiment_id, ExperimentStatus.ERROR, duration, error=error, log_path=str(job.log_path), returncode=rc, extra={"log_tail": tail})
        log.info("experiment.finished", experiment_id=job.experiment_id, duration_s=round(duration, 2))
        return ExperimentResult(job.experiment_id, ExperimentStatus.OK, duration, result=result, log_path=str(job.log_path), returncode=rc)

    def _write_lease(self, pid: int, job: ExperimentJob) -> Path | None:
        """A small file naming the running worker (a few bytes: written inline)."""
        if self.lease_dir is None:
            return None
        path = _lease_path(self.lease_dir, pid)
        try:
            self.lease_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"pid": pid, "parent_pid": os.getpid(), "experiment_id": job.experiment_id}))
        except OSError as exc:
            log.warning("experiment.lease_not_written", pid=pid, error=str(exc))
            return None
        return path

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the experiment's process group, SIGKILL after the grace period."""
        if proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, self._grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                await asyncio.wait_for(proc.wait(), timeout=wait)
                return
            except TimeoutError:
                continue

    async def shutdown(self) -> None:
        await asyncio.gather(*(self._kill(p) for p in list(self._procs.values())), return_exceptions=True)


class PoolExecutor:
    """Adapter for executors that return futures (spawn ``ProcessPoolExecutor``, Dask, Ray).

    Runs ``experiment_worker.run_job`` on the pool. A job past its time limit is ABANDONED: the
    future is cancelled if it has not started, otherwise its result is ignored when it arrives.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._futures: dict[str, Any] = {}

    async def run(self, job: ExperimentJob) -> ExperimentResult:
        from hydra_engine.agent.experiment_worker import run_job

        Path(job.work_dir).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        fut = self._pool.submit(run_job, job.to_dict())
        self._futures[job.experiment_id] = fut
        try:
            wrapped = asyncio.wrap_future(fut) if isinstance(fut, concurrent.futures.Future) else asyncio.ensure_future(fut)
            doc = await asyncio.wait_for(asyncio.shield(wrapped), timeout=job.time_limit_s)
        except TimeoutError:
            fut.cancel()
            return ExperimentResult(job.experiment_id, ExperimentStatus.ABANDONED, time.monotonic() - started,
                                    error=f"abandoned after its time limit of {job.time_limit_s:g} s", log_path=str(job.log_path))
        except Exception as exc:  # noqa: BLE001 - the pool itself failed (broken pool, lost worker)
            return ExperimentResult(job.experiment_id, ExperimentStatus.ERROR, time.monotonic() - started,
                                    error=f"{type(exc).__name__}: {exc}", log_path=str(job.log_path))
        finally:
            self._futures.pop(job.experiment_id, None)
        duration = time.monotonic() - started
        if doc.get("ok"):
            return ExperimentResult(job.experiment_id, ExperimentStatus.OK, duration, result=doc.get("result") or {}, log_path=str(job.log_path))
        return ExperimentResult(job.experiment_id, ExperimentStatus.ERROR, duration, error=str(doc.get("error")), log_path=str(job.log_path))

    async def shutdown(self) -> None:
        for fut in list(self._futures.values()):
            fut.cancel()
