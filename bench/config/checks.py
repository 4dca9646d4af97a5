"""The range every config key declares next to its default, and a short form of any user value.

A range sits in the field's metadata (`z_dim: int = ranged(100, Range(1, 4096))`) and
config.check_type enforces it, so `--dry-run` rejects a value that training would choke on or that
means nothing (a label of 5, a negative learning rate, 10^11 critic steps). A subclass that only
changes a default (WGAN's learning rates) keeps its parent's range: `field_range` looks up the MRO.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

SHORT = 60  # characters of a user value shown in an error message


@dataclass(frozen=True)
class Range:
    """Numbers from lo to hi, ends included unless open. NaN is in no range, and infinity only in
    one with an infinite closed end, so a float key with a Range is finite unless it says otherwise."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    noun: str = ""  # what a value is, when "a number" says too little ("a probability")

    def __contains__(self, x: Any) -> bool:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return bool(above and below)

    def describe(self, kind: str) -> str:
        """`kind` ("a number", "an integer") with the bounds: "an integer between 1 and 100"."""
        kind = self.noun or kind
        lo = f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi == math.inf and self.hi_open:
            return f"{'a finite number' if kind == 'a number' else kind} {lo}"
        if not (self.lo_open or self.hi_open):
            return f"{kind} between {_num(self.lo)} and {_num(self.hi)}"
        return f"{kind} {lo} and {'<' if self.hi_open else '<='} {_num(self.hi)}"


def _num(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


POSITIVE = Range(0.0, math.inf, lo_open=True, hi_open=True)  # learning rates, clip: finite and > 0
NON_NEGATIVE = Range(0.0, math.inf, hi_open=True)  # penalty weights: finite and >= 0
PROBABILITY = Range(0.0, 1.0, noun="a probability")
SEED = Range(0, 2**32 - 1)  # what numpy and torch accept as a seed
STEPS = Range(1, 10**8)


def ranged(default: Any, bounds: Range) -> Any:
    """A dataclass field with a default and the range its values (or each item of a tuple) must lie in."""
    return dataclasses.field(default=default, metadata={"range": bounds})


def field_range(cls: type, name: str) -> Optional[Range]:
    """The range declared for `name` by `cls` or the nearest base class that declares one."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "range" in f.metadata:
            return f.metadata["range"]
    return None


def clip(text: str, limit: int = SHORT) -> str:
    """Text on one line, cut to `limit` characters (a parser's message may quote the input)."""
    text = " ".join(text[:2 * limit].split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Full(Exception):
    pass


def short(value: Any, limit: int = SHORT) -> str:
    """repr(value) cut to about `limit` characters, visiting no more of it than that.

    Error messages show user values, and a full repr is what hung on a YAML alias bomb (a few lines
    that expand to 10^9 items), raised on a 5,000-digit integer and printed 312 MB for a bad axis.
    Every item visited costs at least one character, so the walk stops after about `limit` of them,
    however large, deep or shared the structure is."""
    parts: list[str] = []
    left = [limit + 1]

    def emit(text: str) -> None:
        parts.append(text)
        left[0] -= len(text)
        if left[0] <= 0:
            raise _Full

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            emit("{")
            for i, (k, x) in enumerate(v.items()):
                emit(", " if i else "")
                walk(k)
                emit(": ")
                walk(x)
            emit("}")
        elif isinstance(v, (list, tuple, set, frozenset)):
            ends = "[]" if isinstance(v, list) else "()" if isinstance(v, tuple) else "{}"
            emit(ends[0])
            for i, x in enumerate(v):
                emit(", " if i else "")
                walk(x)
            emit(ends[1])
        elif isinstance(v, (str, bytes)):
            emit(repr(v[:limit + 1]))
        elif isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 4 * limit:
            emit(f"<integer of {int(v.bit_length() * math.log10(2)) + 1:,} digits>")  # str() would raise
        else:
            emit(repr(v)[:limit + 1])

    try:
        walk(value)
    except _Full:
        pass
    text = "".join(parts)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def as_number(value: Any) -> float | None:
    """value as a float, or None. Strings that float() reads count: YAML 1.1 reads an exponent
    without a dot (1e3, 1E-4) as a string. "nan" and "inf" pass here and fail every finite range."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer past 1.8e308: outside every finite range
        return math.inf if value > 0 else -math.inf
