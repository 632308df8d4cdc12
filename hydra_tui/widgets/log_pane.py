"""Log pane: the last lines from the log ring (capped; the full log is the store's file)."""

from __future__ import annotations

from textual.widgets import RichLog

from hydra_tui.logging_setup import LogRing

LEVEL_STYLE = {"warning": "yellow", "error": "bold red", "critical": "bold red", "exception": "bold red"}


class LogPane(RichLog):
    """Reads new lines from a ``LogRing`` on each ``pull``; keeps at most ``max_lines``."""

    def __init__(self, ring: LogRing | None = None, **kw: object) -> None:
        super().__init__(max_lines=500, wrap=True, min_width=20, markup=False, highlight=False, **kw)  # type: ignore[arg-type]
        self.ring = ring
        self._seq = 0

    def pull(self) -> None:
        if self.ring is None:
            return
        self._seq, lines = self.ring.since(self._seq)
        from rich.text import Text

        for line in lines:
            self.write(Text(f"{line.at:%H:%M:%S} {line.text}", style=LEVEL_STYLE.get(line.level, "")))
