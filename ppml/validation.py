"""The checks every file the toolkit reads goes through, written once: a header's format and
version, hexadecimal integers, and how a value read from a file is shown in an error."""
from __future__ import annotations

import re
import reprlib

#: What a hexadecimal field holds (``int(…, 16)`` alone would also take "0x…", "_", spaces, signs).
HEX = re.compile(r"[0-9a-fA-F]+")

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict = 2, 4, 4


def shown(value) -> str:
    """``repr`` of a value read from a file, for an error message: bounded in length, and safe
    on values nested too deeply for ``repr`` itself."""
    return _SHOW.repr(value)


def check_header(d, fmt: str, version: int, error: type, hint: str = "") -> dict:
    """Refuse anything that is not an object of format ``fmt`` and exactly ``version`` (a JSON
    ``true`` is not the version 1), saying what was expected; ``error`` is the exception class
    to raise, ``hint`` what to do about an unsupported version."""
    if not isinstance(d, dict):
        raise error(f"expected a JSON object of format {fmt!r}, got {type(d).__name__}")
    if d.get("format") != fmt:
        raise error(f"format is {shown(d.get('format'))}, expected {fmt!r}")
    if d.get("version") != version or isinstance(d.get("version"), bool):
        raise error(f"version {shown(d.get('version'))} of {fmt!r} is not supported (supported: {version}{hint})")
    return d


def hex_int(value, where: str, max_digits: int, error: type) -> int:
    """A non-empty hexadecimal string of at most ``max_digits`` digits → its integer value."""
    if not isinstance(value, str) or not value or len(value) > max_digits:
        raise error(f"{where} must be a hexadecimal string of at most {max_digits} digits")
    if not HEX.fullmatch(value):
        raise error(f"{where} is not hexadecimal")
    return int(value, 16)
