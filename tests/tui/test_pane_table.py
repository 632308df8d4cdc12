"""PaneTable keeps Textual's DataTable render caches pane-sized while the table keeps changing."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from hydra_tui.widgets.pane_table import CELLS_PER_ROW, ROWS_CACHED, PaneTable
from hydra_tui.widgets.table_diff import apply_rows


class _OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield PaneTable(id="t")


async def test_render_caches_stay_pane_sized_over_many_updates() -> None:
    app = _OneTable()
    async with app.run_test(size=(120, 60)) as pilot:
        table = app.query_one(PaneTable)
        table.add_columns(*(f"c{i}" for i in range(9)))
        for tick in range(30):  # a refresh a second for half a minute: every cell changes each time
            rows: dict[str, list[Any]] = {f"r{r}": [f"{tick}-{r}-{c}" for c in range(9)] for r in range(100)}
            apply_rows(table, rows)
            table.scroll_to(y=(tick * 7) % 60, animate=False)
            await pilot.pause()
        caches = {"cell": table._cell_render_cache, "row": table._row_render_cache, "line": table._line_cache,
                  "renderables": table._row_renderable_cache}
        assert caches["cell"].maxsize == ROWS_CACHED * CELLS_PER_ROW
        assert all(c.maxsize <= ROWS_CACHED * CELLS_PER_ROW for c in caches.values())
        # ~50 rows x 9 cells rendered per tick: a stock DataTable would hold all of them (up to 10,000)
        assert len(caches["cell"]) == caches["cell"].maxsize and 0 < len(caches["line"]) <= ROWS_CACHED
        assert table.get_cell("r5", table.ordered_columns[3].key) == "29-5-3"
