"""Items 6 and 7 of issue 13: an empty or header-less hydra.db, a missing or older exchange.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import QUICK, STORE, copy_store, hydra
from hydra_engine.store.database import CorruptDatabaseError, Store, backup_database


async def test_zero_byte_db_is_refused_and_says_no_backup_exists(tmp_path: Path) -> None:
    db = tmp_path / STORE / "hydra.db"
    db.parent.mkdir()
    db.write_bytes(b"")
    with pytest.raises(CorruptDatabaseError) as err:
        await Store.open(tmp_path, "sim", "DU1234567")
    text = str(err.value)
    assert str(db) in text and "empty" in text and "no backup" in text
    assert db.stat().st_size == 0  # left untouched, no new store made over it


async def test_header_less_db_names_the_newest_backup(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, "sim", "DU1234567")
    path = store.path
    await store.close()
    backup = backup_database(path, 3)
    path.write_bytes(b"\x00" * 4096)
    with pytest.raises(CorruptDatabaseError) as err:
        await Store.open(tmp_path, "sim", "DU1234567")
    text = str(err.value)
    assert str(path) in text and str(backup) in text and "bad header" in text


async def test_a_new_store_is_made_only_where_none_exists(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, "sim", "DU1234567")
    assert store.created
    await store.close()
    again = await Store.open(tmp_path, "sim", "DU1234567")
    assert not again.created
    await again.close()
    leftovers = [p.name for p in (tmp_path / STORE).iterdir() if p.name not in ("hydra.db", "hydra.lock")]
    assert leftovers == []


def test_empty_db_beside_a_store_exits_2_naming_the_file(traded_dir: Path, tmp_path: Path) -> None:
    data = copy_store(traded_dir, tmp_path / "d")
    db = data / STORE / "hydra.db"
    db.write_bytes(b"")
    for side in ("hydra.db-wal", "hydra.db-shm"):
        (db.parent / side).unlink(missing_ok=True)
    out = hydra("--no-ui", "--days", "1", "--data-dir", str(data), *QUICK)
    assert out.returncode == 2, out.stderr[-3000:]
    assert str(db) in out.stderr and "Traceback" not in out.stderr
    assert db.stat().st_size == 0


def test_missing_exchange_state_beside_a_store_is_refused(traded_dir: Path, tmp_path: Path) -> None:
    data = copy_store(traded_dir, tmp_path / "d")
    state = data / STORE / "exchange.json"
    state.unlink()
    out = hydra("--no-ui", "--days", "1", "--data-dir", str(data), *QUICK)
    assert out.returncode == 2, out.stderr[-3000:]
    assert str(state) in out.stderr and str(data / STORE / "hydra.db") in out.stderr
    assert "--new-exchange" in out.stderr and "Traceback" not in out.stderr
    assert not state.exists()  # nothing started, nothing saved
    fresh = hydra("--no-ui", "--days", "1", "--new-exchange", "--data-dir", str(data), *QUICK)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert state.exists()


def test_an_exchange_clock_behind_the_store_is_refused(traded_dir: Path, tmp_path: Path) -> None:
    data = copy_store(traded_dir, tmp_path / "d")
    state = data / STORE / "exchange.json"
    older = json.loads(state.read_text())
    run = hydra("--no-ui", "--days", "2", "--data-dir", str(data), *QUICK)
    assert run.returncode == 0, run.stderr[-3000:]
    state.write_text(json.dumps(older))  # an old copy of the exchange's state put back
    out = hydra("--no-ui", "--days", "1", "--data-dir", str(data), *QUICK)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "backwards" in out.stderr and str(state) in out.stderr and "Traceback" not in out.stderr


def test_a_corrupt_exchange_state_exits_2(traded_dir: Path, tmp_path: Path) -> None:
    data = copy_store(traded_dir, tmp_path / "d")
    state = data / STORE / "exchange.json"
    state.write_text("{not json")
    out = hydra("--no-ui", "--days", "1", "--data-dir", str(data), *QUICK)
    assert out.returncode == 2, out.stderr[-3000:]
    assert str(state) in out.stderr and "Traceback" not in out.stderr


def test_replay_on_a_locked_store_exits_2(traded_dir: Path, tmp_path: Path) -> None:
    from hydra_engine.store.lock import StoreLock

    data = copy_store(traded_dir, tmp_path / "d")
    held = StoreLock.acquire(data / STORE / "hydra.lock")
    try:
        out = hydra("replay", "--keep-store", "--days", "1", "--data-dir", str(data), *QUICK)
    finally:
        held.release()
    assert out.returncode == 2, out.stderr[-3000:]
    assert "in use" in out.stderr and "Traceback" not in out.stderr


def test_days_0_reports_the_positions_the_account_holds(traded_dir: Path, tmp_path: Path) -> None:
    data = copy_store(traded_dir, tmp_path / "d")
    out = hydra("--no-ui", "--days", "0", "--data-dir", str(data), *QUICK)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "positions flat" not in out.stdout and "ZO" in out.stdout, out.stdout
    assert "net liquidation unknown" not in out.stdout


def test_data_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    afile = tmp_path / "not-a-dir"
    afile.write_text("x")
    for args in (("--no-ui", "--days", "1"), ("replay", "--keep-store", "--days", "1")):
        out = hydra(*args, "--data-dir", str(afile), *QUICK)
        assert out.returncode == 2, (args, out.stderr[-3000:])
        assert str(afile) in out.stderr and "not a directory" in out.stderr and "Traceback" not in out.stderr


def test_read_only_data_dir_exits_2(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("this user can write to a read-only directory (root)")
        out = hydra("--no-ui", "--days", "1", "--data-dir", str(ro), *QUICK)
        assert out.returncode == 2, out.stderr[-3000:]
        assert str(ro) in out.stderr and "not writable" in out.stderr and "Traceback" not in out.stderr
    finally:
        ro.chmod(0o700)
        shutil.rmtree(ro, ignore_errors=True)
