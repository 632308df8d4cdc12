"""The main screen's header and panes; each reads a ``View`` snapshot and never touches the engine."""
