"""Where HYDRA keeps its files: one data directory, one sub-directory per broker and account.

Resolution order for the data directory: the ``--data-dir`` value, then ``$HYDRA_HOME``, then
``~/.hydra``. Keeping the rule in one place means the engine, the TUI and every subcommand
(``status``, ``journal``, ``reset-peak``...) open the same store.
"""

from __future__ import annotations

import os
import re
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
