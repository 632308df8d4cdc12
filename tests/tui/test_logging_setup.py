"""The app's logging: structlog and the stdlib loggers (ib_async, APScheduler) reach the rotating
log file and the log pane's ring, and nothing reaches the terminal the app draws on."""

from __future__ import annotations

import logging
from pathlib import Path

import structlog

from hydra_tui import logging_setup


def test_nothing_reaches_the_terminal_and_everything_reaches_the_file(tmp_path: Path, capfd) -> None:
    log_file = tmp_path / "store" / "hydra.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.lastResort)
    logs = logging_setup.configure("INFO", log_file)
    try:
        structlog.get_logger("hydra_engine.runner").info("runner.cycle_started", market="CL")
        structlog.get_logger("hydra_engine.runner").warning("runner.cycle_slow", market="ZO", seconds=3.5)
        logging.getLogger("ib_async.wrapper").info("updatePortfolio: chatter")
        logging.getLogger("ib_async.client").warning("Peer closed connection")
        logging.getLogger("apscheduler.scheduler").error("job missed")
        logging.getLogger("some.library").critical("no handler of its own")
        out, err = capfd.readouterr()
        assert out == "" and err == ""
        for h in logging.getLogger().handlers:
            h.flush()
        text = log_file.read_text()
        for needle in ("runner.cycle_started", "runner.cycle_slow", "updatePortfolio: chatter", "Peer closed connection",
                       "job missed", "no handler of its own"):
            assert needle in text
        _, lines = logs.ring.since(0)
        shown = [line.text for line in lines]
        assert any("runner.cycle_started market=CL" in t for t in shown)
        assert any("Peer closed connection" in t for t in shown) and any("job missed" in t for t in shown)
        assert not any("updatePortfolio" in t for t in shown)  # stdlib INFO chatter stays in the file
        assert {line.level for line in lines} >= {"info", "warning", "error"}
    finally:
        logs.close()
        structlog.reset_defaults()
        for h in saved[0]:  # this process's other tests keep the logging they had
            root.addHandler(h)
        root.setLevel(saved[1])
        logging.lastResort = saved[2]
