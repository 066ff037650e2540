"""How commands print: the console, JSON, and one registry of output formats.

A command that offers several formats (compare, history, profile summarize/diff, ab) gives
`emit` one producer per format it offers and lets it do the rest (`emit_to` takes the format
from the output file's name: bench report's text files):

    emit(fmt, output,
         table=lambda console: console.print(comparison_table(...)),
         markdown=lambda: compare_markdown(...),
         json=lambda: {...},
         html=lambda: compare_html(...))

`table` prints rich renderables on the console it is given (the terminal, or a recording one
when -o FILE is given); `markdown` and `html` return text; `json` returns data, made JSON-able
here. Files are written through a temporary name, never half-written. The renderers themselves
live in results/ (report/table, report/markdown, report/html, profile).
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError

NEEDS_FILE = frozenset({"html"})  # formats that are never printed on a terminal


def console() -> Any:
    """stdout console; when piped, wide enough that tables do not fold."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=200)


def json_text(data: Any) -> str:
    from results.runfile import jsonable

    return _json.dumps(jsonable(data), indent=2, default=str)


def print_json(data: Any) -> None:
    click.echo(json_text(data))


def write_text(text: str, output: Path | None) -> None:
    """To stdout, or to a file through a temporary name (never half-written)."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    from harness.files import write_text_atomic

    write_text_atomic(output, text)
    click.echo(f"wrote {output}", err=True)


def _table(produce: Callable[[Any], None], output: Path | None) -> None:
    if output is None:
        produce(console())
        return
    from rich.console import Console

    with open(os.devnull, "w") as sink:
        recorder = Console(record=True, width=200, file=sink)
        produce(recorder)
    write_text(recorder.export_text(), output)


def _text(produce: Callable[[], str], output: Path | None) -> None:
    write_text(produce(), output)


def _json_out(produce: Callable[[], Any], output: Path | None) -> None:
    write_text(json_text(produce()), output)


# format -> how a producer's result reaches stdout or -o FILE
FORMATTERS: dict[str, Callable[[Any, Path | None], None]] = {
    "table": _table,
    "markdown": _text,
    "json": _json_out,
    "html": _text,
    "junit": _text,  # JUnit XML (bench check), text a producer returns
}


def emit(fmt: str, output: Path | None = None, **producers: Callable[..., Any] | None) -> None:
    """Render in format `fmt` with its producer (keyword = format name), to stdout or `output`."""
    produce = producers.get(fmt)
    if fmt not in FORMATTERS or produce is None:
        offered = ", ".join(k for k, v in producers.items() if v is not None)
        raise UserError(f"format {fmt!r} is not offered here; choose one of {offered}")
    if fmt in NEEDS_FILE and output is None:
        raise UserError(f"--format {fmt} needs -o FILE")
    FORMATTERS[fmt](produce, output)


# An output file's suffix -> its format, where the name says the format (bench report's text
# files; a plain-text file gets Markdown, which reads as text).
SUFFIX_FORMATS: dict[str, str] = {".md": "markdown", ".txt": "markdown", ".json": "json",
                                  ".html": "html", ".htm": "html"}


def emit_to(output: Path, **producers: Callable[..., Any] | None) -> None:
    """`emit` in the format `output`'s name says (SUFFIX_FORMATS)."""
    fmt = SUFFIX_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UserError(f"{output}: name the file for its format "
                        f"({', '.join(sorted(SUFFIX_FORMATS))})")
    emit(fmt, output, **producers)


def fail_gate(counts: dict[str, int], fail_on: str, command: str) -> None:
    """`--fail-on regression|noise|never`: exit 1 when cases fail the gate."""
    from results.compare import REGRESSION

    failing = counts.get(REGRESSION, 0) + (counts.get("noise", 0) if fail_on == "noise" else 0)
    if fail_on != "never" and failing:
        click.echo(f"bench {command}: {failing} case(s) fail the gate (--fail-on {fail_on})",
                   err=True)
        raise SystemExit(1)


def print_sweeps(out: Any, rows: list[dict[str, Any]]) -> None:
    """Collectives: nccl-tests' size-sweep table too."""
    from results.report.collectives import sweep_table, sweeps

    for title, ms in sweeps(rows):
        out.print(sweep_table(title, ms))
