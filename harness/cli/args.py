"""Parsing the command line's repeated `KEY=V1,V2` and comma-list options (shared by commands)."""

from __future__ import annotations

from harness.errors import UserError


def parse_kv(items: tuple[str, ...], what: str) -> dict[str, list[str]]:
    """`-p m=64,128 -p n=1` -> {"m": ["64", "128"], "n": ["1"]}; `-p` values may be sweeps."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"{what} {item!r} is not key=value (e.g. {what} m=64,128)")
        out.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    if what == "-p":  # sweeps such as size=8B..64MiB*2 expand to one value per point
        from harness.sweep import expand_sweep

        out = {k: [x for v in vs for x in expand_sweep(v, f"-p {k}")] for k, vs in out.items()}
    return out


def parse_tags(items: tuple[str, ...]) -> dict[str, str]:
    """`--tag k=v --tag team=a,b` -> {"k": "v", "team": "a,b"} (a tag's value is one string)."""
    return {k: ",".join(v) for k, v in parse_kv(items, "--tag").items()}


def split_values(values: tuple[str, ...]) -> list[str]:
    """Repeated and comma-separated values as one list: ('a,b', 'c') -> ['a', 'b', 'c']."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_counts(text: str, option: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; anything but positive whole numbers is one clear error."""
    try:
        counts = [int(x) for x in split_values((text,))]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise UserError(f"{option} {text!r} is not a list of positive whole numbers, "
                        f"e.g. {option} 1,2,4")
    return counts
