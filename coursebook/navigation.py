"""Navigation cells (previous / contents / next) at the end of every notebook, made by the model.

They are not in notebooks/src/ (no author keeps them by hand): the model appends them to the
book's cells (Notebook.book_cells), learner copies inherit them, and coursebook.build.refresh()
rewrites them in every built book without running anything, so adding a notebook updates its
neighbours' links. Idempotent: a second refresh changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coursebook.cells import NAVIGATION, tags

if TYPE_CHECKING:  # the model imports this module: a notebook is only passed in here
    from coursebook.model import Notebook


def navigation_cell(notebook: Notebook, notebooks: list[Notebook]) -> Any:
    import nbformat

    stems = [n.stem for n in notebooks]
    here = stems.index(notebook.stem)
    parts = []
    if here > 0:
        before = notebooks[here - 1]
        parts.append(f"[← {before.stem[:2]} · {before.title}]({before.book_path.name})")
    parts.append("[Contents](../README.md#the-notebooks)")
    if here + 1 < len(notebooks):
        after = notebooks[here + 1]
        parts.append(f"[{after.stem[:2]} · {after.title} →]({after.book_path.name})")
    cell = nbformat.v4.new_markdown_cell("---\n" + " | ".join(parts), metadata={"tags": [NAVIGATION]})
    cell.id = "navigation"
    return cell


def with_navigation(cells: list[Any], notebook: Notebook, notebooks: list[Notebook]) -> list[Any]:
    """`cells` without any old navigation cell, with the current one at the end."""
    return [c for c in cells if NAVIGATION not in tags(c)] + [navigation_cell(notebook, notebooks)]
