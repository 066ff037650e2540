"""`bench serve` (a results browser over the store) and `bench publish` (the same pages as a
static site). Both only read the store; neither ingests run files waiting in a run folder."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from harness.cli.options import RUN_DIR_ENV, STORE_HELP
from harness.errors import UserError

WEB_HINT = "pip install 'accelbench[web]'"


def _need_web() -> None:
    """The web extra's packages, or one line saying how to get them."""
    import importlib.util

    for module in ("fastapi", "uvicorn", "jinja2", "plotly"):
        if importlib.util.find_spec(module) is None:
            raise UserError(f"bench serve/publish need {module!r}, which is not installed: "
                            f"{WEB_HINT}")


def _open_existing(ref: str | None) -> Any:
    """The store, opened to read: a store file that does not exist is an error (none is made),
    an unreachable server is one line."""
    from pathlib import Path as P

    from results.store import Store, store_url

    url = store_url(ref, create=False)
    if url.get_backend_name() == "sqlite" and not P(url.database or "").exists():
        raise UserError(f"no store {url.database}: nothing to show; give --store (or "
                        "BENCH_STORE), or make one with `bench run`")
    return Store(ref, create=False)


def _store_option() -> Any:
    return click.option("--store", envvar="BENCH_STORE", metavar="PATH|URL", help=STORE_HELP)


def _run_dir_option() -> Any:
    return click.option("--run-dir", envvar=RUN_DIR_ENV, default="bench-runs",
                        show_default=True, type=click.Path(file_okay=False, path_type=Path),
                        help="Where traces are looked for when a run's folder moved "
                        "(<run-dir>/<run id>/traces) [env BENCH_RUN_DIR]; nothing is "
                        "ingested from it.")


@click.command()
@_store_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback makes the results readable "
                   "by the network (a warning is printed).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: a free one, printed at start).")
@_run_dir_option()
def serve(store: str | None, host: str, port: int, run_dir: Path) -> None:
    """A results browser: runs, run, case history, compare, with a JSON API (/api/docs).

    Read-only over the same store the other commands use.

    \b
    Examples:
      bench serve                          ./bench.db on http://127.0.0.1:8765
      bench serve --store postgresql+psycopg://bench@db/results --port 8080
    """
    _need_web()
    from results.web.server import serve as run_server

    st = _open_existing(store)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
        run_server(st, host, port, run_dir=run_dir)


@click.command()
@_store_option()
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for the site (made if absent; its pages replaced).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Only runs with this tag (repeatable).")
@_run_dir_option()
def publish(store: str | None, output: Path, tags: tuple[str, ...], run_dir: Path) -> None:
    """The pages of `bench serve` as a static site (relative links: works from file://).

    \b
    Examples:
      bench publish -o site/
      bench publish --tag branch=main -o public/
    """
    _need_web()
    from harness.cli.args import parse_tags
    from results.web.site import publish as write_site
    from results.web.views import Query

    st = _open_existing(store)
    query = Query(tag=",".join(f"{k}={v}" for k, v in parse_tags(tags).items()))
    counts = write_site(st, output, query, run_dir=run_dir)
    click.echo(f"wrote {counts['runs']} run, {counts['cases']} case and {counts['compare']} "
               f"compare page(s) and {counts['traces']} trace(s) to {output}/index.html")


COMMANDS = [serve, publish]
