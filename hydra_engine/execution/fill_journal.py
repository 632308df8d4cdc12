"""FillJournal: every execution written durably, exactly once by execId, as it arrives.

``log_fill`` returns only after the row is committed (with the store's ``synchronous=FULL`` that
means on disk): True if it was new, False if that execId was already journalled. Each write runs
as ONE call on the store connection's own worker thread (aiosqlite's: a dedicated thread fed by a
queue), BEGIN, insert, commit, so a fill costs one thread round trip plus one fsync and the event
loop never waits on the disk. It is the store's shared connection on purpose: a second writer
connection would commit between another transaction's read and its write (the order repository
reads then updates under the store's write gate) and fail that transaction with SQLITE_BUSY_SNAPSHOT.

``group_commit=True`` shares the fsync between fills that arrive together: concurrent
``log_fill`` calls queue up, one writer task writes everything queued as one ``executemany`` in a
single transaction and commits once, then answers every caller. A batch that did not insert every
row (an execId journalled before, or twice in the batch) or hit an error is rolled back to its
savepoint and redone record by record, so each repeat is checked and a bad record fails alone.
Durability is the same (nobody returns before the commit); throughput grows with the number of
fills in flight. ``flush()`` waits for the queue.

Every fill writes the ``fills`` row and two index entries (the execId key and ``fills_time``);
v011 dropped ``(symbol, fill_time)``, which no query needed.

Each fill with a predicted slippage, an actual slippage and an arrival mid also has its
(predicted, actual, mid) float64 triple packed into ``fill_slippage_blocks`` for its (symbol,
data_type), so the reconciler reads columns, not rows. Packing is deferred: fills above the fold
mark (``fill_slippage_mark``, migration v005) are the unpacked tail; once the tail reaches
``BLOCK_FILLS`` fills, the transaction that completes it also packs it and moves the mark. So 63
per-fill commits in 64 write only the ``fills`` pages (no block read or rewrite), and the
reconciler reads the blocks plus at most ``BLOCK_FILLS - 1`` tail rows. The fold packs the rows its
own transaction inserted from the records in hand and reads back only older tail rows. The journal
keeps the mark in memory (read once, re-read after a failed commit). ``rebuild_blocks`` repairs
the blocks.

A report under a journalled execId is compared with the stored fill: identical (same symbol,
contract month, side, quantity and price) is a silent no-op; different is a conflict. The journalled
fill stays; the transaction that found it also writes a ``fill_conflicts`` row (migration v009) and
an ``ops_journal`` entry of kind ``FILL_CONFLICT``, so the alarm is durable with the check, the
market's trading waits (``Store.fill_conflicts.blocked``) and ``status`` can show it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite
import structlog

from hydra_engine.clock import from_iso, to_iso

log = structlog.get_logger(__name__)

DataType = Literal["live", "delayed"]
BLOCK_FILLS = 64
"""Fills per slippage block (1,536-byte blob) and the tail length that triggers a fold. In the
WITHOUT ROWID table a blob this size spills into an overflow page; 41-fill blocks that fit the
cell were measured no faster to read (more rows), so 64 stays."""
_TRIPLE = struct.Struct("<ddd")
_UTC = dt.timezone.utc
_UNSET_DOUBLE = 1.7976931348623157e308  # IB's "no value"

_COLUMNS = (
    "exec_id, fill_time, symbol, contract_month, direction, qty, limit_price, arrival_mid, fill_price, "
    "predicted_slippage, actual_slippage, latency_ms, order_ref, perm_id, commission, data_type"
)
_INSERT = (
    f"INSERT INTO fills ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (exec_id) DO NOTHING"
)
_TAIL = (
    "SELECT block_no, n_fills, data FROM fill_slippage_blocks WHERE symbol = ? AND data_type = ? "
    "ORDER BY block_no DESC LIMIT 1"
)
_MARK = "SELECT folded_through_id FROM fill_slippage_mark WHERE singleton = 0"
_SET_MARK = (
    "INSERT INTO fill_slippage_mark (singleton, folded_through_id) VALUES (0, ?) "
    "ON CONFLICT (singleton) DO UPDATE SET folded_through_id = excluded.folded_through_id"
)
_UNFOLDED = (
    "SELECT symbol, data_type, predicted_slippage, actual_slippage, arrival_mid FROM fills "
    "WHERE id > ? AND id <= ? AND predicted_slippage IS NOT NULL AND actual_slippage IS NOT NULL "
    "AND arrival_mid IS NOT NULL ORDER BY id"
)
_ID_OF = "SELECT id FROM fills WHERE exec_id = ?"
_EXISTING = "SELECT symbol, contract_month, direction, qty, fill_price, fill_time, order_ref, perm_id FROM fills WHERE exec_id = ?"
_COMPARED = ("symbol", "contract_month", "direction", "qty", "fill_price")
_PUT_CONFLICT = (
    "INSERT INTO fill_conflicts (exec_id, symbol, detected_at, differences, journalled, reported) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_PUT_ALARM = (
    "INSERT INTO ops_journal (at, kind, command, actor, message, detail) VALUES (?, 'FILL_CONFLICT', '', 'fill_journal', ?, ?)"
)
_PUT_BLOCK = (
    "INSERT INTO fill_slippage_blocks (symbol, data_type, block_no, n_fills, data) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (symbol, data_type, block_no) DO UPDATE SET n_fills = excluded.n_fills, data = excluded.data"
)


def _opt(name: str, v: float | None, *, positive: bool = False, nonneg: bool = False) -> float | None:
    """None/NaN -> None (unknown); infinities and out-of-range values raise naming the field."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"FillRecord.{name}={v!r} must be a number or None")
    f = float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        raise ValueError(f"FillRecord.{name}={v!r} must be finite")
    if positive and f <= 0:
        raise ValueError(f"FillRecord.{name}={v!r} must be > 0")
    if nonneg and f < 0:
        raise ValueError(f"FillRecord.{name}={v!r} must be >= 0")
    return f


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One execution as journalled. Prices are quote currency per unit; slippage is price units
    per unit (positive is a cost); ``commission`` account currency (None until reported).

    Unknown optional values may be None (or NaN, read as None). ``actual_slippage`` is derived
    from direction, fill price and arrival mid when not given (and checked when it is).
    """

    exec_id: str
    fill_time: dt.datetime
    """Timezone-aware; stored as UTC."""
    symbol: str
    contract_month: str
    """YYYYMM (or YYYYMMDD) of the contract traded."""
    direction: Literal["BUY", "SELL"]
    qty: float
    """Contracts in this execution (> 0)."""
    fill_price: float
    limit_price: float | None = None
    arrival_mid: float | None = None
    """Mid when the order was decided (the benchmark for actual slippage)."""
    predicted_slippage: float | None = None
    actual_slippage: float | None = None
    latency_ms: float | None = None
    """Decision (arrival) to fill, milliseconds."""
    order_ref: str = ""
    perm_id: int | None = None
    commission: float | None = None
    data_type: DataType = "live"
    """Whether the arrival mid came from live or delayed market data."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.exec_id, str) or not self.exec_id:
            raise ValueError(f"FillRecord.exec_id={self.exec_id!r} must be a non-empty string")
        if not isinstance(self.fill_time, dt.datetime) or self.fill_time.tzinfo is None:
            raise ValueError(f"FillRecord.fill_time={self.fill_time!r} must be a timezone-aware datetime")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"FillRecord.symbol={self.symbol!r} must be a non-empty string")
        if self.direction not in ("BUY", "SELL"):
            raise ValueError(f"FillRecord.direction={self.direction!r} must be 'BUY' or 'SELL'")
        if self.data_type not in ("live", "delayed"):
            raise ValueError(f"FillRecord.data_type={self.data_type!r} must be 'live' or 'delayed'")
        qty = _opt("qty", self.qty, positive=True)
        if qty is None:
            raise ValueError(f"FillRecord.qty={self.qty!r} must be a number > 0")
        fill = _opt("fill_price", self.fill_price, positive=True)
        if fill is None:
            raise ValueError(f"FillRecord.fill_price={self.fill_price!r} must be a finite price > 0")
        set_(self, "qty", qty)
        set_(self, "fill_price", fill)
        set_(self, "limit_price", _opt("limit_price", self.limit_price, positive=True))
        mid = _opt("arrival_mid", self.arrival_mid, positive=True)
        set_(self, "arrival_mid", mid)
        set_(self, "predicted_slippage", _opt("predicted_slippage", self.predicted_slippage))
        set_(self, "latency_ms", _opt("latency_ms", self.latency_ms))
        com = self.commission
        set_(self, "commission", None if com is not None and not isinstance(com, bool) and
             isinstance(com, (int, float)) and abs(com) >= _UNSET_DOUBLE else _opt("commission", com))
        actual = _opt("actual_slippage", self.actual_slippage)
        if mid is not None:
            derived = (fill - mid) if self.direction == "BUY" else (mid - fill)
            if actual is not None and abs(actual - derived) > 1e-9 * max(1.0, abs(mid)):
                raise ValueError(
                    f"FillRecord.actual_slippage={actual!r} disagrees with {self.direction} fill {fill} vs "
                    f"arrival mid {mid} (expected {derived!r}; positive is a cost)"
                )
            actual = derived
        set_(self, "actual_slippage", actual)
        if self.perm_id is not None:
            set_(self, "perm_id", int(self.perm_id))

    @property
    def actual_slippage_bps(self) -> float | None:
        if self.actual_slippage is None or self.arrival_mid is None:
            return None
        return self.actual_slippage / self.arrival_mid * 10_000.0

    @property
    def predicted_slippage_bps(self) -> float | None:
        if self.predicted_slippage is None or self.arrival_mid is None:
            return None
        return self.predicted_slippage / self.arrival_mid * 10_000.0

    def _row(self) -> tuple[Any, ...]:
        # fill_time was checked timezone-aware at construction: to_iso's checks are not repeated
        return (self.exec_id, self.fill_time.astimezone(_UTC).isoformat(timespec="microseconds"), self.symbol, self.contract_month, self.direction, self.qty,
                self.limit_price, self.arrival_mid, self.fill_price, self.predicted_slippage,
                self.actual_slippage, self.latency_ms, self.order_ref, self.perm_id, self.commission,
                self.data_type)

    @classmethod
    def _from_row(cls, r: Sequence[Any]) -> FillRecord:
        return cls(exec_id=r[0], fill_time=from_iso(r[1]), symbol=r[2], contract_month=r[3], direction=r[4],
                   qty=r[5], limit_price=r[6], arrival_mid=r[7], fill_price=r[8], predicted_slippage=r[9],
                   actual_slippage=r[10], latency_ms=r[11], order_ref=r[12], perm_id=r[13], commission=r[14],
                   data_type=r[15])


# --------------------------------------------------------------------------- worker-thread code


class _FoldState:
    """The fold mark as last committed (None: unknown, read it from the database)."""

    __slots__ = ("mark",)

    def __init__(self) -> None:
        self.mark: int | None = None


def _read_mark(db: sqlite3.Connection) -> int:
    try:
        row = db.execute(_MARK).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise RuntimeError("table fill_slippage_mark is missing: the store needs migration "
                               "v005_fill_perf (hydra_engine/store/migrations)") from exc
        raise
    return int(row[0]) if row else 0


def _append_blocks(db: sqlite3.Connection, by_key: dict[tuple[str, str], bytearray]) -> None:
    """Append packed triples to each key's tail block (filling a partial one first), in order."""
    size = _TRIPLE.size
    full = BLOCK_FILLS * size
    for key, new in by_key.items():
        tail = db.execute(_TAIL, key).fetchone()
        if tail is None:
            block_no, buf = 0, bytearray()
        elif tail[1] >= BLOCK_FILLS:
            block_no, buf = tail[0] + 1, bytearray()
        else:
            block_no, buf = tail[0], bytearray(tail[2])
        buf.extend(new)
        for off in range(0, len(buf), full):
            chunk = bytes(buf[off:off + full])
            db.execute(_PUT_BLOCK, (*key, block_no, len(chunk) // size, chunk))
            block_no += 1


def _fold(db: sqlite3.Connection, fresh: Sequence[FillRecord] = (), fresh_from: int = 0) -> int:
    """Pack every fill above the mark into the blocks and move the mark to the newest fill (inside
    the caller's transaction). Returns the new mark.

    ``fresh``: the records this transaction just inserted, with ids ``fresh_from`` .. the newest,
    packed from memory; only older tail rows are read back from ``fills``."""
    mark = _read_mark(db)
    top = db.execute("SELECT MAX(id) FROM fills").fetchone()[0]
    if top is None or top <= mark:
        return mark
    by_key: dict[tuple[str, str], bytearray] = {}
    pack = _TRIPLE.pack
    read_to = top
    if fresh and fresh_from > mark and fresh_from + len(fresh) - 1 == top:
        read_to = fresh_from - 1
    else:
        fresh = ()
    if read_to > mark:
        for sym, dtp, p, a, m in db.execute(_UNFOLDED, (mark, read_to)):
            by_key.setdefault((sym, dtp), bytearray()).extend(pack(p, a, m))
    for r in fresh:
        p, a, m = r.predicted_slippage, r.actual_slippage, r.arrival_mid
        if p is not None and a is not None and m is not None:
            by_key.setdefault((r.symbol, r.data_type), bytearray()).extend(pack(p, a, m))
    _append_blocks(db, by_key)
    db.execute(_SET_MARK, (top,))
    return int(top)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def _check_duplicate(db: sqlite3.Connection, rec: FillRecord, now: str) -> dict[str, Any] | None:
    """Compare ``rec`` with the fill journalled under its execId; on a difference write the alarm
    (conflict row and ops journal entry, in the caller's transaction) and return its detail."""
    row = db.execute(_EXISTING, (rec.exec_id,)).fetchone()
    if row is None:
        return None
    old = dict(zip((*_COMPARED, "fill_time", "order_ref", "perm_id"), row, strict=True))
    new = {k: getattr(rec, k) for k in _COMPARED} | {"fill_time": to_iso(rec.fill_time), "order_ref": rec.order_ref,
                                                     "perm_id": rec.perm_id}
    diff = [k for k in _COMPARED if not _same(old[k], new[k])]
    if not diff:
        return None
    detail = {"exec_id": rec.exec_id, "symbol": old["symbol"], "differences": diff, "journalled": old, "reported": new}
    db.execute(_PUT_CONFLICT, (rec.exec_id, old["symbol"], now, json.dumps(diff), json.dumps(old), json.dumps(new)))
    changes = ", ".join(f"{k} {old[k]} -> {new[k]}" for k in diff)
    db.execute(_PUT_ALARM, (now, f"{old['symbol']}: conflicting fill under execId {rec.exec_id} ({changes}); "
                                 f"the journalled fill is kept and trading for {old['symbol']} waits until cleared",
                            json.dumps(detail, sort_keys=True, default=str)))
    return detail


def _insert(db: sqlite3.Connection, rec: FillRecord, conflicts: list[dict[str, Any]] | None = None) -> int:
    """The new row's id, or 0 when that execId is already journalled (a conflicting one is also
    recorded as an alarm and appended to ``conflicts``)."""
    cur = db.execute(_INSERT, rec._row())  # noqa: SLF001 - same module
    if cur.rowcount == 1:
        return int(cur.lastrowid or 0)
    found = _check_duplicate(db, rec, to_iso(dt.datetime.now(dt.timezone.utc)))
    if found is not None and conflicts is not None:
        conflicts.append(found)
    return 0


def _write_one(db: sqlite3.Connection, rec: FillRecord, conflicts: list[dict[str, Any]]) -> int:
    """Insert one fill inside a savepoint (a failure leaves the surrounding transaction intact)."""
    db.execute("SAVEPOINT fill_journal")
    try:
        new = _insert(db, rec, conflicts)
        db.execute("RELEASE fill_journal")
        return new
    except BaseException:
        db.execute("ROLLBACK TO fill_journal")
        db.execute("RELEASE fill_journal")
        raise


def _write_batch(db: sqlite3.Connection, recs: Sequence[FillRecord], state: _FoldState,
                 conflicts: list[dict[str, Any]] | None = None) -> list[bool | BaseException]:
    """Write every record, fold the tail into blocks if it reached ``BLOCK_FILLS``, commit once.

    The common case (one fill, no transaction open on the connection) is BEGIN, INSERT, COMMIT:
    the same pages as a bare insert. A batch is one ``executemany`` in a savepoint; when it did
    not insert every row (an execId already journalled, a repeat inside the batch) or a statement
    failed, the savepoint is rolled back and the batch redone record by record, so a repeat is
    checked for a conflict and a bad record fails alone."""
    out: list[bool | BaseException] = []
    found: list[dict[str, Any]] = []
    top = fresh_from = 0
    fresh: Sequence[FillRecord] = ()
    try:
        if not db.in_transaction and len(recs) == 1:
            db.execute("BEGIN")
            try:
                top = _insert(db, recs[0], found)
            except sqlite3.Error as exc:  # only our statement is in this transaction
                db.rollback()
                return [exc]
            out.append(top > 0)
            fresh, fresh_from = (recs if top else ()), top
        else:
            if not db.in_transaction:
                db.execute("BEGIN")
            fresh_from, top = _insert_all_new(db, recs)
            if top:
                out = [True] * len(recs)
                fresh = recs
            else:
                ids = []
                for rec in recs:
                    try:
                        ids.append(_write_one(db, rec, found))
                    except sqlite3.Error as exc:
                        out.append(exc)
                        continue
                    out.append(ids[-1] > 0)
                top = max(ids, default=0)
        mark = state.mark
        if top:
            if mark is None:
                mark = _read_mark(db)
            if top - mark >= BLOCK_FILLS:
                mark = _fold(db, fresh, fresh_from)
        db.commit()
    except BaseException:
        state.mark = None  # whatever was folded in this transaction is gone: re-read next time
        if db.in_transaction:
            db.rollback()
        raise
    state.mark = mark
    if conflicts is not None:
        conflicts.extend(found)  # committed with the batch
    return out


def _insert_all_new(db: sqlite3.Connection, recs: Sequence[FillRecord]) -> tuple[int, int]:
    """One ``executemany`` of the batch inside a savepoint: (first, newest) row id when every record
    was inserted; else (0, 0), with the savepoint rolled back (nothing of the batch written)."""
    db.execute("SAVEPOINT fill_batch")
    try:
        inserted = db.executemany(_INSERT, [r._row() for r in recs]).rowcount  # noqa: SLF001 - same module
    except sqlite3.Error:
        inserted = -1
    if inserted != len(recs):
        db.execute("ROLLBACK TO fill_batch")
        db.execute("RELEASE fill_batch")
        return 0, 0
    db.execute("RELEASE fill_batch")
    top = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
    first = int(db.execute(_ID_OF, (recs[0].exec_id,)).fetchone()[0])
    return (first if top - first + 1 == len(recs) else 0), top


def _set_commission(db: sqlite3.Connection, exec_id: str, commission: float) -> bool:
    n = db.execute("UPDATE fills SET commission = ? WHERE exec_id = ?", (commission, exec_id)).rowcount
    db.commit()
    return n == 1


class FillJournal:
    """Durable, exactly-once fill log over the store's shared aiosqlite connection."""

    def __init__(self, conn: aiosqlite.Connection, group_commit: bool = False, *, max_batch: int = 512,
                 tx: Any = None) -> None:
        """``tx``: the Store's ``WriteGate`` (its lock keeps our commit from landing inside another
        writer's open multi-statement transaction on the shared connection)."""
        run = getattr(conn, "_execute", None)
        if not callable(run):
            raise TypeError("FillJournal needs an aiosqlite.Connection (aiosqlite >=0.20,<0.23)")
        self._conn = conn
        self._run: Callable[..., Any] = run
        self.group_commit = group_commit
        self._max_batch = max(1, int(max_batch))
        self._queue: list[tuple[FillRecord, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._pending_commission: dict[str, float] = {}
        self._fold_state = _FoldState()
        self.commits = 0
        """Transactions committed by this journal (with group commit: fewer than fills)."""
        self.conflicts = 0
        """Conflicting duplicates found (each journalled as an alarm)."""
        lock = getattr(tx, "lock", None) or getattr(tx, "_lock", None)
        self._lock: asyncio.Lock | None = lock if isinstance(lock, asyncio.Lock) else None

    async def _call(self, fn: Callable[[], Any]) -> Any:
        if self._lock is None:
            return await self._run(fn)
        async with self._lock:
            return await self._run(fn)

    def _db(self) -> sqlite3.Connection:
        return self._conn._conn  # noqa: SLF001 - runs on aiosqlite's worker thread only

    async def log_fill(self, rec: FillRecord) -> bool:
        """Journal ``rec`` durably; False when its execId was already journalled."""
        if not isinstance(rec, FillRecord):
            raise TypeError(f"log_fill needs a FillRecord, got {type(rec).__name__}")
        if self._pending_commission:
            late = self._pending_commission.pop(rec.exec_id, None)
            if late is not None and rec.commission is None:
                rec = dataclasses.replace(rec, commission=late)
        if not self.group_commit:
            found: list[dict[str, Any]] = []
            result = (await self._call(lambda: _write_batch(self._db(), (rec,), self._fold_state, found)))[0]
            self.commits += 1
            self._alarm(found)
        else:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[bool] = loop.create_future()
            self._queue.append((rec, fut))
            if self._writer is None or self._writer.done():
                self._writer = loop.create_task(self._drain(), name="fill-journal-writer")
            result = await fut
        if result is True:
            return True
        if isinstance(result, BaseException):
            log.error("fill_journal.write_failed", exec_id=rec.exec_id, error=str(result))
            raise result
        if not result:  # new fills are logged by the caller (one log line per fill is enough)
            log.debug("fill_journal.duplicate", exec_id=rec.exec_id)
        return result

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._writer = None

    async def _drain_queue(self) -> None:
        while self._queue:
            if len(self._queue) <= self._max_batch:
                batch, self._queue = self._queue, []
            else:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            recs = [r for r, _ in batch]
            found: list[dict[str, Any]] = []
            try:
                results = await self._call(lambda: _write_batch(self._db(), recs, self._fold_state, found))  # noqa: B023 - awaited in this iteration
            except BaseException as exc:  # commit failed: nobody in this batch is durable
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            self.commits += 1
            self._alarm(found)
            for (_, fut), res in zip(batch, results, strict=False):
                if not fut.done():
                    fut.set_result(res)  # type: ignore[arg-type]  # exceptions re-raised by log_fill

    def _alarm(self, found: list[dict[str, Any]]) -> None:
        for c in found:  # already committed: the store holds the alarm
            self.conflicts += 1
            log.error("fill_journal.conflict", exec_id=c["exec_id"], symbol=c["symbol"], differences=c["differences"],
                      journalled=c["journalled"], reported=c["reported"])

    async def flush(self) -> None:
        """Wait until every queued fill is committed (group commit); a no-op otherwise."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        await self.flush()

    async def set_commission(self, exec_id: str, commission: float) -> bool:
        """Record a commission report (account currency) that came after its execution.

        Returns False when the fill is not journalled yet: the value is kept in memory and applied
        when that execId is logged. IB's "unset" value and NaN are ignored.
        """
        c = float(commission)
        if math.isnan(c) or abs(c) >= _UNSET_DOUBLE:
            return False
        if math.isinf(c):
            raise ValueError(f"commission={commission!r} for {exec_id} must be finite")
        await self.flush()
        found = await self._call(lambda: _set_commission(self._db(), exec_id, c))
        if not found:
            self._pending_commission[exec_id] = c
            log.info("fill_journal.commission_before_fill", exec_id=exec_id, commission=c)
        return bool(found)

    async def fills(self, symbol: str | None = None, since: dt.datetime | None = None,
                    limit: int | None = None) -> list[FillRecord]:
        """Journalled fills, newest first, optionally for one symbol, at/after ``since``, at most ``limit``."""
        where: list[str] = []
        args: list[Any] = []
        if symbol is not None:
            where.append("symbol = ?")
            args.append(symbol)
        if since is not None:
            if since.tzinfo is None:
                raise ValueError(f"since={since!r} must be timezone-aware")
            where.append("fill_time >= ?")
            args.append(to_iso(since))
        sql = f"SELECT {_COLUMNS} FROM fills"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY fill_time DESC, id DESC"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit={limit} must be >= 0")
            sql += " LIMIT ?"
            args.append(int(limit))
        async with self._conn.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [FillRecord._from_row(r) for r in rows]  # noqa: SLF001

    async def get(self, exec_id: str) -> FillRecord | None:
        async with self._conn.execute(f"SELECT {_COLUMNS} FROM fills WHERE exec_id = ?", (exec_id,)) as cur:
            row = await cur.fetchone()
        return FillRecord._from_row(row) if row else None  # noqa: SLF001

    async def rebuild_blocks(self) -> int:
        """Recreate ``fill_slippage_blocks`` from ``fills`` (repair) and move the fold mark to the
        newest fill; returns the fills packed."""
        def work() -> int:
            db = self._db()
            if not db.in_transaction:
                db.execute("BEGIN")
            try:
                db.execute("DELETE FROM fill_slippage_blocks")
                top = db.execute("SELECT COALESCE(MAX(id), 0) FROM fills").fetchone()[0]
                rows = db.execute(
                    "SELECT symbol, data_type, predicted_slippage, actual_slippage, arrival_mid FROM fills "
                    "WHERE id <= ? AND predicted_slippage IS NOT NULL AND actual_slippage IS NOT NULL "
                    "AND arrival_mid IS NOT NULL ORDER BY symbol, data_type, id", (top,)
                )
                total, key, buf, block_no = 0, None, bytearray(), 0

                def put() -> None:
                    if key is not None and buf:
                        db.execute(_PUT_BLOCK, (*key, block_no, len(buf) // _TRIPLE.size, bytes(buf)))

                for sym, dtp, p, a, m in rows:
                    if (sym, dtp) != key:
                        put()
                        key, buf, block_no = (sym, dtp), bytearray(), 0
                    elif len(buf) // _TRIPLE.size >= BLOCK_FILLS:
                        put()
                        buf, block_no = bytearray(), block_no + 1
                    buf += _TRIPLE.pack(p, a, m)
                    total += 1
                put()
                _read_mark(db)  # a clear error if the table is missing
                db.execute(_SET_MARK, (top,))
                db.commit()
            except BaseException:
                self._fold_state.mark = None
                db.rollback()
                raise
            self._fold_state.mark = int(top)
            return total
        return int(await self._call(work))
