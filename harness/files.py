"""Files a command writes for the user (-o FILE, --plots DIR): checked before any work, written
through a temporary name in the same folder, and an OS error (no such folder, a file where a
folder should be, read-only, a full disk) ends the command as one line instead of a traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.errors import UserError


def check_output_file(path: Path, option: str = "-o") -> None:
    """Refuse, before any work, an output file that cannot be written: its folder is missing or
    is a file, the path is a folder, or the folder is not writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file name to {option}")
    _check_folder(path.resolve().parent, path, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {path}: it {unwritable(path)}; choose another {option} "
                        "path")


def check_output_dir(path: Path, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be made or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot write into {path}: it is a file; give {option} a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK):
            raise UserError(f"cannot write into {path}: folder {unwritable(path)}; choose "
                            f"another {option} folder")
        return
    _check_folder(path.resolve().parent, path, option)


def check_run_dir(path: Path) -> None:
    """Refuse, before the store or anything else is written, a run folder that cannot be made
    (with its missing parents) or written."""
    path = Path(path)
    there = path.resolve()
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        raise UserError(f"cannot write run files in {path}: {there} is a file, not a folder; "
                        "choose another --run-dir")
    if not os.access(there, os.W_OK | os.X_OK):
        raise UserError(f"cannot write run files in {path}: folder {there} "
                        f"{unwritable(there)}; choose another --run-dir")


def _check_folder(folder: Path, path: Path, option: str) -> None:
    if not folder.exists():
        raise UserError(f"cannot write {path}: folder {folder} does not exist; create it or "
                        f"choose another {option} path")
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: {folder} is a file, not a folder; choose "
                        f"another {option} path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {path}: folder {folder} {unwritable(folder)}; choose "
                        f"another {option} path")


def unwritable(path: Path) -> str:
    """Why a path that os.access says cannot be written cannot: "is on a read-only file
    system" (a read-only mount, which no permission change fixes) or "is not writable"."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except (OSError, AttributeError):  # (no statvfs on Windows)
        pass
    return "is not writable"


def not_a_file(path: Path) -> str:
    """Why a path that should name a file to read does not: for "... and {reason}"."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if path.exists():
        return f"{path} is not a regular file"
    return "no such file"


def os_error_line(exc: OSError, path: Path, option: str) -> str:
    """An OSError met while writing `path` as what is wrong and how to fix it."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        fix = f"free space there or choose another {option} path"
    else:
        fix = f"choose another {option} path"
    return f"cannot write {path}: {reason}; {fix}"


@contextlib.contextmanager
def writing(path: Path, option: str = "-o") -> Iterator[None]:
    """Around code that writes `path` (or into the folder `path`): an OSError becomes one
    UserError naming the path the user gave."""
    try:
        yield
    except OSError as exc:
        raise UserError(os_error_line(exc, Path(path), option)) from None


def write_atomic(path: Path, write: Callable[[Path], None], option: str = "-o") -> None:
    """write(tmp) to a temporary file beside `path`, then rename it to `path`: never a
    half-written file, and nothing left behind when writing fails."""
    path = Path(path)
    folder = path.resolve().parent
    check_output_file(path, option)
    with writing(path, option):
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            write(tmp)
            tmp.chmod(0o666 & ~_umask())  # as open() would make it, not mkstemp's 0600
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str, option: str = "-o") -> None:
    """`text` (UTF-8) to `path` through `write_atomic`."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), option)
