"""Experiments on a Dask ``distributed`` cluster: the second ``ExperimentExecutor``.

For users whose experiments outgrow one machine (``agent.executor = "dask"``, ``agent.scheduler =
"tcp://host:port"``). The job is the same ``ExperimentJob``, but a worker may not share the
engine's filesystem, so nothing travels as a path: the engine reads the inputs pickle and the
directories named in ``SHIPPED_PARAMS`` (the champion's saved model) and submits their bytes with
the job. On the worker, ``run_on_worker`` unpacks them into a private temporary directory, runs the
very same child as the local executor (``python -m hydra_engine.agent.experiment_worker``) killed
at its time limit plus a grace, and returns every file the child wrote as data. The engine then
writes what the local executor would have written in the job's work dir (``result.json`` with the
worker's paths mapped back to the engine's, the model files, ``experiment.log``) and reads the
result with the same ``read_result``, so the agent sees the same statuses and journals the same
entries.

Time limits: the engine waits ``time_limit_s`` from the moment it starts the job; a future not done
by then is cancelled and reported TIMEOUT, and whatever it returns later is dropped with it (never
written, never promoted). The worker kills the child ``kill_grace_s`` after the limit (counted
from its own start, which is never earlier than the engine's), so an abandoned experiment does not
hold a worker for long.

``dask[distributed]`` is an optional extra (``pip install -e '.[dask]'``): it is imported only by
``DaskExecutor.connect``, never when this module is imported, and the worker side needs nothing
from Dask (workers import this module by name, so HYDRA must be installed on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from hydra_engine.agent.experiments import (
    PARENT_PID_ENV,
    WORKER_MODULE,
    ExperimentJob,
    ExperimentResult,
    ExperimentStatus,
    read_result,
)

log = structlog.get_logger(__name__)

__all__ = ["DaskExecutor", "ExecutorUnavailable", "RemoteOutcome", "SHIPPED_PARAMS", "check_scheduler_address", "run_on_worker"]

SHIPPED_PARAMS: tuple[str, ...] = ("champion_model_dir",)
"""Job params naming a directory on the engine's filesystem that the experiment reads: packed and
sent with the job, unpacked on the worker, and named by their engine path again in the result."""

RESULT_FILE = "result.json"
LOG_FILE = "experiment.log"
JOB_FILE = "job.json"
MAX_LOG_BYTES = 2_000_000
"""The worker returns at most the last this-many bytes of an experiment's log."""

_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})$")


class ExecutorUnavailable(RuntimeError):
    """The chosen executor cannot run experiments (not installed, bad address, no scheduler)."""


def check_scheduler_address(address: str | None) -> str:
    """``address`` if it is ``tcp://host:port`` or ``tls://host:port``; ValueError naming the key otherwise."""
    text = (address or "").strip()
    m = _ADDRESS.match(text)
    if not m or not 0 < int(m.group(3)) < 65536:
        shown = "nothing" if not text else repr(text)
        raise ValueError(f"agent.scheduler = {shown}: with agent.executor = \"dask\" give the Dask scheduler's address "
                         "as tcp://host:port (or tls://host:port), e.g. \"tcp://10.0.0.5:8786\"")
    return text


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    """What a worker sends back: the files the experiment wrote, as bytes, and how its child ended."""

    files: dict[str, bytes]
    """Relative path (POSIX) -> content, for every file the child left in its work dir but job.json."""
    returncode: int | None
    killed: bool
    """True when the worker killed the child at its time limit plus the grace."""
    paths: dict[str, str]
    """Worker path -> engine path: the work dir and every shipped directory."""
    worker: str
    host: str
    duration_s: float
    log_bytes_cut: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- worker side


def _pack_dir(path: Path) -> dict[str, bytes]:
    """Every regular file under ``path`` as relative POSIX path -> bytes."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _safe_target(root: Path, rel: str) -> Path:
    """``root / rel``, refusing absolute paths and ``..`` (the peer's names are not trusted blindly)."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"refusing file name {rel!r} outside the experiment's directory")
    return root.joinpath(*pure.parts)


def _unpack(files: dict[str, bytes], root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = _safe_target(root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # noqa: BLE001 - called outside a Dask worker (tests, a plain pool)
        return ""


def _child_env(extra_sys_path: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(Path(__file__).resolve().parents[2]), *extra_sys_path]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env[PARENT_PID_ENV] = str(os.getpid())  # the child dies with this worker process
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_on_worker(job: dict[str, Any], inputs: bytes | None, shipped: dict[str, dict[str, bytes]],
                  kill_grace_s: float = 2.0, max_log_bytes: int = MAX_LOG_BYTES) -> RemoteOutcome:
    """Run one experiment on this machine from data alone; blocking (a Dask task thread runs it).

    ``job``: ``ExperimentJob.to_dict()`` with the engine's paths; ``inputs``: the inputs pickle's
    bytes; ``shipped``: param name -> that directory's files. The child is the local executor's
    worker module in a new session, SIGKILLed (process group) at ``time_limit_s + kill_grace_s``.
    """
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=f"hydra-{job['experiment_id']}-"))
    try:
        work = root / "work"
        work.mkdir()
        params = dict(job.get("params") or {})
        paths = {str(work): str(job["work_dir"])}
        for name, files in shipped.items():
            target = root / "shipped" / name
            _unpack(files, target)
            paths[str(target)] = str(params[name])
            params[name] = str(target)
        local_job = dict(job, params=params, work_dir=str(work), inputs_path=None)
        if inputs is not None:
            (root / "inputs.pkl").write_bytes(inputs)
            local_job["inputs_path"] = str(root / "inputs.pkl")
        job_path = work / JOB_FILE
        job_path.write_text(json.dumps(local_job, indent=2, default=str))
        limit = float(job["time_limit_s"]) + max(0.0, kill_grace_s)
        killed = False
        with open(work / LOG_FILE, "ab") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(job_path)],
                stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True,
                env=_child_env(list(job.get("extra_sys_path") or ())), cwd=work,
            )
            try:
                rc: int | None = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                rc, killed = proc.returncode, True
            except BaseException:
                _kill_group(proc)
                raise
        files = _pack_dir(work)
        files.pop(JOB_FILE, None)
        cut = 0
        text = files.get(LOG_FILE, b"")
        if len(text) > max_log_bytes:
            cut = len(text) - max_log_bytes
            files[LOG_FILE] = text[-max_log_bytes:]
        return RemoteOutcome(files, rc, killed, paths, _worker_address(), socket.gethostname(),
                             time.monotonic() - started, cut)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- engine side


def _map_paths(value: Any, paths: dict[str, str]) -> Any:
    """``value`` with every string naming a worker path (or a path under one) renamed to the engine's."""
    if isinstance(value, str):
        for remote, local in paths.items():
            if value == remote:
                return local
            if value.startswith(remote + "/"):
                return local + value[len(remote):]
        return value
    if isinstance(value, dict):
        return {k: _map_paths(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_paths(v, paths) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class _Payload:
    inputs: bytes | None
    shipped: dict[str, dict[str, bytes]]


class DaskExecutor:
    """Experiments as tasks on a Dask cluster; build it with ``await DaskExecutor.connect(address)``."""

    def __init__(self, client: Any, *, kill_grace_s: float = 2.0, address: str = "") -> None:
        self._client = client
        self._grace = kill_grace_s
        self.address = address
        self._futures: dict[str, Any] = {}
        self.abandoned: list[str] = []
        """Experiment ids whose futures were cancelled at their limit (their late results were dropped)."""

    @classmethod
    async def connect(cls, address: str | None, *, timeout_s: float = 10.0, kill_grace_s: float = 2.0) -> DaskExecutor:
        """Connect to the scheduler at ``address``; ExecutorUnavailable (the engine exits 2) when Dask
        is not installed, the address is malformed or no scheduler answers within ``timeout_s``."""
        try:
            address = check_scheduler_address(address)
        except ValueError as exc:
            raise ExecutorUnavailable(str(exc)) from None
        try:
            from distributed import Client
        except ImportError as exc:
            raise ExecutorUnavailable(
                f"agent.executor = \"dask\" needs Dask distributed, which is not installed ({exc.name or exc}): "
                "pip install -e '.[dask]' (or pip install 'dask[distributed]'), or set agent.executor = \"local\""
            ) from None
        try:
            client = await Client(address, asynchronous=True, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorUnavailable(
                f"agent.scheduler = {address!r}: no Dask scheduler answered within {timeout_s:g} s ({exc}). "
                "Start one there (dask scheduler; dask worker ADDRESS on each machine), or set agent.executor = \"local\""
            ) from None
        try:
            workers = await asyncio.wait_for(client.nthreads(), timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            await client.close()
            raise ExecutorUnavailable(f"agent.scheduler = {address!r}: the Dask scheduler did not list its workers ({exc})") from None
        log.info("experiment.dask_connected", scheduler=address, workers=len(workers))
        if not workers:
            log.warning("experiment.dask_no_workers", scheduler=address,
                        hint="experiments wait for a worker and time out at their limit until one joins")
        return cls(client, kill_grace_s=kill_grace_s, address=address)

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (asynchronous): for diagnostics, never for submitting around the executor."""
        return self._client

    @property
    def running(self) -> list[str]:
        return list(self._futures)

    @staticmethod
    def _prepare(job: ExperimentJob) -> _Payload:
        """Read what the job needs (inputs, shipped dirs) and reset its work dir like the local executor."""
        work = Path(job.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        job.job_path.write_text(json.dumps(job.to_dict(), indent=2, default=str))
        with contextlib.suppress(FileNotFoundError):
            job.result_path.unlink()
        inputs = Path(job.inputs_path).read_bytes() if job.inputs_path else None
        shipped = {}
        for name in SHIPPED_PARAMS:
            value = job.params.get(name)
            if isinstance(value, str) and value and Path(value).is_dir():
                shipped[name] = _pack_dir(Path(value))
        return _Payload(inputs, shipped)

    @staticmethod
    def _write_back(job: ExperimentJob, out: RemoteOutcome) -> None:
        """Write in the job's work dir what the local executor would have left there."""
        work = Path(job.work_dir)
        for rel, data in out.files.items():
            target = _safe_target(work, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel == RESULT_FILE:
                with contextlib.suppress(ValueError):  # a bad document is written as it came: read_result names it
                    data = json.dumps(_map_paths(json.loads(data), out.paths), default=str).encode()
                tmp = target.with_name(RESULT_FILE + ".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            elif rel == LOG_FILE:
                head = (f"# dask worker {out.worker or '?'} on host {out.host}, exit code {out.returncode}"
                        f"{', killed at its limit' if out.killed else ''}"
                        f"{f', first {out.log_bytes_cut} bytes of the log cut' if out.log_bytes_cut else ''}\n")
                with open(target, "ab") as fh:
                    fh.write(head.encode() + data)
            else:
                target.write_bytes(data)

    async def run(self, job: ExperimentJob) -> ExperimentResult:
        started = time.monotonic()
        log_path = str(job.log_path)

        def ended(status: ExperimentStatus, error: str | None = None, **kw: Any) -> ExperimentResult:
            return ExperimentResult(job.experiment_id, status, time.monotonic() - started, error=error, log_path=log_path, **kw)

        try:
            payload = await asyncio.to_thread(self._prepare, job)
        except OSError as exc:
            return ended(ExperimentStatus.ERROR, f"cannot send the experiment to the cluster: {exc}")
        fut = self._client.submit(run_on_worker, job.to_dict(), payload.inputs, payload.shipped, self._grace,
                                  key=f"hydra-{job.experiment_id}", pure=False)
        self._futures[job.experiment_id] = fut
        log.info("experiment.started", experiment_id=job.experiment_id, executor="dask", scheduler=self.address,
                 time_limit_s=job.time_limit_s, log_path=log_path)
        waiter = asyncio.ensure_future(self._await(fut))
        try:
            remaining = max(0.001, job.time_limit_s - (time.monotonic() - started))
            out: RemoteOutcome = await asyncio.wait_for(asyncio.shield(waiter), timeout=remaining)
        except TimeoutError:
            waiter.cancel()
            await self._cancel(fut)
            self.abandoned.append(job.experiment_id)
            log.warning("experiment.timeout", experiment_id=job.experiment_id, executor="dask", time_limit_s=job.time_limit_s)
            return ended(ExperimentStatus.TIMEOUT, f"not done within its time limit of {job.time_limit_s:g} s on the Dask "
                                                   "cluster: cancelled, any later result is dropped")
        except asyncio.CancelledError:
            waiter.cancel()
            await asyncio.shield(self._cancel(fut))
            raise
        except Exception as exc:  # noqa: BLE001 - the task or the cluster failed (lost worker, HYDRA missing there)
            trace = "".join(traceback.format_exception(exc)).strip()
            log.warning("experiment.error", experiment_id=job.experiment_id, executor="dask", error=f"{type(exc).__name__}: {exc}")
            return ended(ExperimentStatus.ERROR, f"the Dask cluster could not run the experiment: {trace}")
        finally:
            self._futures.pop(job.experiment_id, None)
        await asyncio.to_thread(self._write_back, job, out)
        extra = {"worker": out.worker, "host": out.host}
        if out.killed:  # the worker's own backstop fired before the engine's limit (clocks far apart)
            return ended(ExperimentStatus.TIMEOUT, f"killed by the worker after its time limit of {job.time_limit_s:g} s",
                         returncode=out.returncode, extra=extra)
        result, error = await asyncio.to_thread(read_result, job)
        if out.returncode != 0 and error is None:
            error = f"worker exited with code {out.returncode}"
        if error is not None:
            log.warning("experiment.error", experiment_id=job.experiment_id, executor="dask", returncode=out.returncode,
                        error=error.splitlines()[-1] if error else "")
            tail = out.files.get(LOG_FILE, b"")[-2000:].decode(errors="replace")
            return ended(ExperimentStatus.ERROR, error, returncode=out.returncode, extra=extra | {"log_tail": tail})
        log.info("experiment.finished", experiment_id=job.experiment_id, executor="dask", worker=out.worker,
                 duration_s=round(time.monotonic() - started, 2))
        return ended(ExperimentStatus.OK, result=result, returncode=out.returncode, extra=extra)

    @staticmethod
    async def _await(fut: Any) -> RemoteOutcome:
        out: RemoteOutcome = await fut
        return out

    @staticmethod
    async def _cancel(fut: Any) -> None:
        """Release the future: Dask drops its result, and a task not yet started never starts."""
        with contextlib.suppress(Exception):
            pending = fut.cancel()
            if inspect.isawaitable(pending):
                await asyncio.wait_for(pending, timeout=10.0)

    async def shutdown(self) -> None:
        """Cancel every experiment still out (their workers kill them at their limits) and disconnect."""
        for fut in list(self._futures.values()):
            await self._cancel(fut)
        self._futures.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.close(), timeout=10.0)
