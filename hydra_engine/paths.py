"""Where HYDRA keeps its files: one data directory, one sub-directory per broker and account.

Resolution order for the data directory: the ``--data-dir`` value, then ``$HYDRA_HOME``, then
``~/.hydra``. Keeping the rule in one place means the engine, the TUI and every subcommand
(``status``, ``journal``, ``reset-peak``...) open the same store.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

HYDRA_HOME_ENV = "HYDRA_HOME"
DEFAULT_DIR_NAME = ".hydra"
DB_FILE_NAME = "hydra.db"
LOCK_FILE_NAME = "hydra.lock"

_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")


def data_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``cli_value``, else ``$HYDRA_HOME``, else ``~/.hydra`` (absolute)."""
    if cli_value is not None and str(cli_value).strip():
        return Path(cli_value).expanduser().resolve()
    env = os.environ.get(HYDRA_HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / DEFAULT_DIR_NAME).resolve()


class DataDirError(ValueError):
    """The data directory cannot hold stores (a file, or not writable); the message says which and why."""


def check_data_dir(path: Path) -> Path:
    """``path`` made if missing and proven writable (a real file written and removed), else DataDirError.

    A write probe rather than ``os.access``: it also catches read-only mounts and works as root."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise DataDirError(f"data directory {path}: {parent} is not a directory (it is a file); "
                               "give --data-dir a directory, or move the file aside")
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, probe = tempfile.mkstemp(prefix=".hydra-write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"data directory {path} is not writable ({exc.strerror or exc}); "
                           "fix its permissions or give another --data-dir") from None
    return path


def store_dir_name(broker: str, account: str) -> str:
    """``<broker>-<account>``, e.g. ``sim-DU1234567``; both parts are checked so no path escapes."""
    for label, value in (("broker", broker), ("account", account)):
        if not value or not _NAME_PART.match(value) or ".." in value:
            raise ValueError(
                f"{label} {value!r} cannot name a store directory: use letters, digits, '_' or '.', "
                "starting with a letter or digit"
            )
    return f"{broker}-{account}"


def store_dir(base: Path, broker: str, account: str) -> Path:
    """The directory holding one broker+account store under the data directory ``base``."""
    return Path(base) / store_dir_name(broker, account)


def store_db_path(base: Path, broker: str, account: str) -> Path:
    """``<base>/<broker>-<account>/hydra.db``."""
    return store_dir(base, broker, account) / DB_FILE_NAME


CONFIG_FILE_NAME = "hydra.toml"


def config_path(base: Path) -> Path:
    """The default settings file, ``<data dir>/hydra.toml`` (used when no ``--config`` is given)."""
    return Path(base) / CONFIG_FILE_NAME
