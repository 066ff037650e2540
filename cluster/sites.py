"""Sites: one TOML file per cluster (partitions, launcher, MPI type, modules, env,
default account, extra #SBATCH lines), chosen with `--site NAME|FILE`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.files import not_a_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SITES_DIR = Path(__file__).parent / "sites"
_KEYS = {"description", "partitions", "default_partition", "account", "qos", "launcher", "mpi",
         "modules", "env", "sbatch", "reference"}
_NAME = re.compile(r"^[A-Za-z0-9_.:/+-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Site:
    name: str
    description: str = ""
    partitions: tuple[str, ...] = ()
    default_partition: str | None = None
    account: str | None = None
    qos: str | None = None
    launcher: str = "srun"
    mpi: str | None = None
    modules: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    sbatch: tuple[str, ...] = ()
    # A reference file (results.reference) for `bench check --site` and the jobs' pct_expected:
    # an absolute path, resolved against the site file's folder when written relative.
    reference: str | None = None


def builtin_sites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SITES_DIR.glob("*.toml"))}


def load_site(ref: str | None) -> Site:
    """A built-in site by name, or a TOML file; None gives a plain site (srun, no extras)."""
    if ref is None:
        return Site(name="default")
    path = builtin_sites().get(ref) or Path(ref)
    if not path.is_file():
        raise UserError(f"unknown site {ref!r}: not a built-in "
                        f"({', '.join(builtin_sites())}) and {not_a_file(path)}; give a site "
                        "name or a .toml file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; a site file is TOML text") from None
    except OSError as exc:
        raise UserError(f"cannot read site file {path}: {exc.strerror}") from None
    return validate(path.stem, data, str(path), base=path.resolve().parent)


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: {key!r} must be a list of strings")
    for v in value:
        if "\n" in v or "\r" in v:
            raise UserError(f"{where}: {key!r} entries must be single lines")
    return tuple(value)


def _word(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise UserError(f"{where}: {key!r} must be a plain name (letters, digits, _.:/+-), "
                        f"got {value!r}")
    return value


def validate(name: str, data: dict[str, Any], where: str, base: Path | None = None) -> Site:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}")
    partitions = _strings(data, "partitions", where)
    for p in partitions:
        if not _NAME.match(p):
            raise UserError(f"{where}: partition {p!r} is not a plain name")
    default = _word(data, "default_partition", where)
    if default and partitions and default not in partitions:
        raise UserError(f"{where}: default_partition {default!r} is not among the partitions "
                        f"{list(partitions)}")
    launcher = data.get("launcher", "srun")
    able = batch_launchers()
    if launcher not in able:
        raise UserError(f"{where}: launcher must be one of {', '.join(able)}, got {launcher!r}")
    env = data.get("env", {})
    if not isinstance(env, dict):
        raise UserError(f"{where}: 'env' must be a table of NAME = \"value\"")
    for k, v in env.items():
        if not _ENV_NAME.match(k) or not isinstance(v, (str, int, float)) or "\n" in str(v):
            raise UserError(f"{where}: env {k!r} must be a variable name with a one-line value")
    sbatch = _strings(data, "sbatch", where)
    for line in sbatch:
        if not line.startswith("--"):
            raise UserError(f"{where}: sbatch entries are sbatch options such as "
                            f"'--gpus-per-node=4', got {line!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{where}: 'description' must be text")
    reference = data.get("reference")
    if reference is not None:
        if not isinstance(reference, str) or not reference.strip() or "\n" in reference:
            raise UserError(f"{where}: 'reference' must be the path of a reference file")
        ref_path = Path(reference).expanduser()
        if not ref_path.is_absolute() and base is not None:
            ref_path = base / ref_path
        reference = str(ref_path)
    return Site(name=name, description=description, reference=reference, partitions=partitions,
                default_partition=default, account=_word(data, "account", where),
                qos=_word(data, "qos", where), launcher=launcher, mpi=_word(data, "mpi", where),
                modules=_strings(data, "modules", where),
                env={k: str(v) for k, v in env.items()}, sbatch=sbatch)


def batch_launchers() -> list[str]:
    """The launchers a site may name: those that start ranks across a batch job's allocation."""
    from cluster import launchers

    return [n for n in launchers.names() if launchers.get(n).in_batch_job]
