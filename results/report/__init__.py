"""Renderers of stored results. `bench report [KIND] RUN... -o FILE` dispatches on KIND here.

To add a kind: a module in results/report/ with
`render(store: Store, run_ids: list[str], output: Path, **options) -> None`, and a line in KINDS.
A kind that writes text formats hands them to `options["write"](output, json=..., markdown=...)`
(harness.cli.render.emit_to: the one registry of output formats, chosen by the file's name).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    from results.store import Store

KINDS: dict[str, str] = {
    "html": "results.report.html",  # self-contained HTML report with plots (the default)
    "roofline": "results.report.roofline",  # PNG: measured points under peak and attained roofs
    "scaling": "results.report.scaling",  # efficiency vs ranks (prints a table; PNG/SVG/MD/JSON)
}


# The file names a kind writes, where the kind does not tell its format from the name itself.
SUFFIXES: dict[str, tuple[str, ...]] = {"html": (".html", ".htm")}


def check_output_name(kind: str, output: Path) -> None:
    """Refuse an output name whose extension says another format than the kind writes."""
    if kind not in KINDS:
        raise UserError(f"unknown report kind {kind!r}; known: {', '.join(KINDS)}")
    wanted = SUFFIXES.get(kind)
    if wanted and output.suffix.lower() not in wanted:
        given = output.suffix or "a name without an extension"
        raise UserError(f"report kind {kind} writes {wanted[0][1:].upper()}, not {given}: name "
                        f"the file {output.stem}{wanted[0]}")


def render(kind: str, store: Store, run_ids: list[str], output: Path, **options: Any) -> None:
    check_output_name(kind, output)
    folder = output.resolve().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {output}: folder {folder} does not exist")
    importlib.import_module(KINDS[kind]).render(store, run_ids, output, **options)
