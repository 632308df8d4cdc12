"""The long-running processes tune glibc malloc unless the operator already did."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from hydra_tui.process_memory import tune_malloc; print(tune_malloc())"

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt settings are glibc's")


def _run(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def test_glibc_accepts_the_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert _run(env) == "True"


def test_an_operators_own_setting_wins() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"MALLOC_ARENA_MAX": "4"}
    assert _run(env) == "False"
