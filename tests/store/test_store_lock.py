"""Single-instance lock (in-process and across real processes) and the write gate."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hydra_engine.store.database import Store, StoreLockedError
from hydra_engine.store.lock import LockHeldError, StoreLock

REPO = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from hydra_engine.store.database import Store, StoreLockedError

    async def main():
        try:
            s = await Store.open(Path(sys.argv[1]), "sim", "DU1")
        except StoreLockedError as exc:
            print("LOCKED", exc.pid, flush=True)
            return 3
        await s.orders.record_intent("crash-1", market="CL", symbol="CL", action="BUY", quantity=1)
        print("READY", flush=True)
        sys.stdin.readline()          # wait for the test
        if sys.argv[2] == "crash":
            import os
            os._exit(9)               # no close, no checkpoint: a crash
        await s.close()
        return 0

    sys.exit(asyncio.run(main()))
    """
)


def spawn(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
    )


async def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)).strip()


async def test_second_open_in_process_is_refused(tmp_path: Path) -> None:
    first = await Store.open(tmp_path, "sim", "DU1")
    try:
        with pytest.raises(StoreLockedError, match=f"in use by process {os.getpid()}") as info:
            await Store.open(tmp_path, "sim", "DU1")
        assert info.value.pid == os.getpid()
        other = await Store.open(tmp_path, "sim", "DU1", lock=False)  # read-only subcommands
        assert await other.cycles.recent() == []
        await other.close()
    finally:
        await first.close()
    again = await Store.open(tmp_path, "sim", "DU1")
    await again.close()


async def test_lock_held_by_another_process_then_released_by_its_crash(tmp_path: Path) -> None:
    proc = spawn(tmp_path, "crash")
    try:
        assert await read_line(proc) == "READY"
        with pytest.raises(StoreLockedError, match=f"process {proc.pid}") as info:
            await Store.open(tmp_path, "sim", "DU1")
        assert info.value.pid == proc.pid
        assert StoreLock.holder_pid(tmp_path / "sim-DU1" / "hydra.lock") == proc.pid
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert await asyncio.to_thread(proc.wait, 20) == 9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The OS released the dead engine's lock, and its committed intent survived the crash.
    s = await Store.open(tmp_path, "sim", "DU1")
    try:
        assert [o.order_ref for o in await s.orders.unsent_intents()] == ["crash-1"]
    finally:
        await s.close()


async def test_other_process_is_refused_while_we_hold(tmp_path: Path) -> None:
    s = await Store.open(tmp_path, "sim", "DU1")
    try:
        proc = spawn(tmp_path, "clean")
        try:
            assert await read_line(proc) == f"LOCKED {os.getpid()}"
            assert await asyncio.to_thread(proc.wait, 20) == 3
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        await s.close()


def test_store_lock_unit(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    assert StoreLock.holder_pid(path) is None
    lock = StoreLock.acquire(path)
    assert lock.held
    assert StoreLock.holder_pid(path) == os.getpid()
    with pytest.raises(LockHeldError) as info:
        StoreLock.acquire(path)
    assert info.value.pid == os.getpid()
    lock.release()
    lock.release()  # idempotent
    assert StoreLock.holder_pid(path) is None
    StoreLock.acquire(path).release()


async def test_write_gate_rolls_back_only_its_own_block(store: Store) -> None:
    # Another writer's statement is pending (uncommitted) on the shared connection.
    await store.conn.execute("INSERT INTO kv (key, value, updated_at) VALUES ('other', '1', 'x')")
    with pytest.raises(RuntimeError):
        async with store.tx.transaction() as conn:
            await conn.execute("INSERT INTO kv (key, value, updated_at) VALUES ('mine', '2', 'x')")
            raise RuntimeError("boom")
    await store.conn.commit()
    assert await store.kv.items() == {"other": 1}


async def test_write_gate_serialises_writers(store: Store) -> None:
    order: list[str] = []

    async def writer(name: str) -> None:
        async with store.tx.transaction() as conn:
            order.append(f"{name}-in")
            await conn.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, '0', 'x')", (name,))
            await asyncio.sleep(0)
            order.append(f"{name}-out")

    await asyncio.gather(writer("a"), writer("b"))
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])
    assert set(await store.kv.items()) == {"a", "b"}


async def test_write_gate_survives_a_foreign_commit_inside_its_block(store: Store) -> None:
    async with store.tx.transaction() as conn:
        await conn.execute("INSERT INTO kv (key, value, updated_at) VALUES ('a', '1', 'x')")
        await store.conn.commit()  # a writer that ignores the gate commits on the shared connection
        await conn.execute("INSERT INTO kv (key, value, updated_at) VALUES ('b', '2', 'x')")
    assert await store.kv.items() == {"a": 1, "b": 2}
    with pytest.raises(KeyError):  # the block's own error surfaces, not a savepoint error
        async with store.tx.transaction() as conn:
            await conn.execute("INSERT INTO kv (key, value, updated_at) VALUES ('c', '3', 'x')")
            await store.conn.commit()
            raise KeyError("boom")
    assert (await store.kv.items())["c"] == 3  # committed by the foreign writer: cannot be undone
