"""Text from the store or the command line made safe for a terminal: control characters (a
newline, ESC that starts a terminal escape sequence, BEL, C1 controls) and the invisible
characters that reorder or hide text (bidirectional overrides, zero-width spaces) are shown
escaped, as Python writes them in a string literal, so a value always prints as what it is and
on one line. A shared store holds names, tags and parameters that anyone wrote."""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control or invisible formatting character escaped: 'a\\x1b[31m'."""
    return _UNSAFE.sub(_escaped, text)


def unsafe_character(text: str) -> str | None:
    """The first control or invisible formatting character in `text`, escaped; None if none."""
    match = _UNSAFE.search(text)
    return _escaped(match) if match else None
