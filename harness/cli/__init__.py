"""`bench`: the command line. Imports no framework at load; each command imports what it needs.

One module per group of commands, each ending with `COMMANDS = [...]` (the click commands and
groups it defines). To add a command: write harness/cli/<name>.py and add "<name>" to
COMMAND_MODULES. Options shared by commands live in harness.cli.options, output in
harness.cli.render, parsing helpers in harness.cli.args.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from harness import __version__
from harness.distributed import RankFailure
from harness.errors import UserError
from harness.exiting import Interrupted, interrupted_line

# Modules of harness.cli whose COMMANDS are registered on the group, in this order.
COMMAND_MODULES = ["run", "ab", "listing", "results", "cluster", "qualify", "fabric_model",
                   "profile", "serve", "tune"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bench")
def cli() -> None:
    """accelbench: measure accelerators and interconnects honestly.

    \b
    Typical use:
      bench list                          what workloads, backends and suites exist here
      bench run --suite quick             run a suite into ./bench.db and print the results
      bench run -w gemm -b numpy:cpu,torch:cpu -p m=256,1024 -p n=1024 -p k=1024
      bench runs                          runs in the store
      bench show latest                   one run's measurements (latest, latest~1, id prefix)
      bench export latest --format csv -o out.csv

    Exit codes: 0 ok, 1 a case failed, 2 bad input, 130/143 interrupted (partial run kept).
    """


def register(group: click.Group, modules: list[str]) -> None:
    """Add the COMMANDS of each harness.cli.<module> to `group`."""
    for name in modules:
        for command in importlib.import_module(f"{__name__}.{name}").COMMANDS:
            group.add_command(command)


register(cli, COMMAND_MODULES)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes end with one line on stderr and exit code 2."""
    code = 1
    # SIGTERM ends any command as SIGINT does (one line, 128 + the signal), not silently;
    # `bench run` then decides what a signal does to a run.
    signal.signal(signal.SIGTERM, lambda signum, _frame: _raise(Interrupted(signum)))
    try:
        _main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        from harness.exiting import report_exit

        report_exit(code)


def _raise(exc: BaseException) -> None:
    raise exc


def error_line(message: str) -> str:
    """`bench: error: <message>` on one line whatever the message holds: a value with a newline
    or a terminal escape (a case key, a name from a plugin) is shown escaped."""
    from harness.text import printable

    return f"bench: error: {printable(message)}"


def usage_line(exc: click.ClickException) -> str:
    """A parser error as one line: `bench: error: <message> (see 'bench X --help')`."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return error_line(message)


def _speaks_for_the_job() -> bool:
    """Whether this process reports an interruption: not the ranks other than 0 of a job (each
    of them got the signal too; one line is enough)."""
    from harness.exiting import ENV_EXIT_FILE
    from harness.placement import placement

    if os.environ.get(ENV_EXIT_FILE):  # a launching bench says it for the job
        return False
    try:
        return placement().rank == 0
    except Exception:  # a malformed rank variable: better a line too many than none
        return True


def _main(argv: list[str] | None) -> None:
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        cli.main(args=argv, prog_name="bench", standalone_mode=False)
    except UserError as exc:
        click.echo(error_line(str(exc)), err=True)
        from harness import distributed

        distributed.dismiss(exc.exit_code)
        sys.exit(exc.exit_code)
    except RankFailure as exc:  # a rank lost before the run began: nothing to keep
        from harness import distributed
        from harness.exiting import exit_now

        click.echo(error_line(str(exc)), err=True)
        distributed.dismiss(RankFailure.exit_code)
        exit_now(RankFailure.exit_code)  # not the interpreter's shutdown: a rank is gone
    except click.exceptions.Abort:  # Ctrl-C while click parsed or prompted
        if _speaks_for_the_job():
            click.echo(interrupted_line(signal.SIGINT), err=True)
        sys.exit(130)
    except (KeyboardInterrupt, Interrupted) as exc:  # before a run started: nothing to keep
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        if _speaks_for_the_job():
            click.echo(interrupted_line(signum), err=True)
        sys.exit(128 + int(signum))
    except no_args as exc:  # `bench` or `bench site` alone: its help, as --help prints it
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.ClickException as exc:
        click.echo(usage_line(exc), err=True)
        sys.exit(2)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
