"""Contract naming (contract sections 2 and 5): which raw symbols are outrights of a
root, and the expiry an outright's month code and digits stand for."""

from __future__ import annotations

import re
from functools import lru_cache

MONTH_CODES = "FGHJKMNQUVXZ"


#: Any outright future: a root of 1-6 upper-case letters or digits, a month code and the
#: year's last one or two digits (the shortest root that fits: ``MGCZ24`` is MGC's).
ANY_OUTRIGHT = re.compile(rf"^([A-Z0-9]{{1,6}}?)[{MONTH_CODES}][0-9]{{1,2}}$")


def root_of(raw_symbol: str) -> str | None:
    """The root of outright ``raw_symbol`` (``MGCZ4`` -> ``MGC``), None for anything else
    (spreads such as ``MGCZ4-MGCG5``, options, parents)."""
    match = ANY_OUTRIGHT.match(raw_symbol)
    return match.group(1) if match else None


def requested_root(symbol: str) -> str | None:
    """The root a requested symbol names: ``MGC.FUT`` (parent) or an outright
    (``MGCZ4``); None for anything else (``ALL_SYMBOLS``, an option, a spread)."""
    if symbol.endswith(".FUT"):
        return symbol[: -len(".FUT")] or None
    return root_of(symbol)


@lru_cache(maxsize=64)
def outright_pattern(symbol: str) -> re.Pattern[str]:
    """``^{symbol}[FGHJKMNQUVXZ][0-9]{1,2}$``: an outright future of root ``symbol``."""
    return re.compile(rf"^{re.escape(symbol)}[{MONTH_CODES}][0-9]{{1,2}}$")


def is_outright(raw_symbol: str, symbol: str) -> bool:
    """Whether ``raw_symbol`` is an outright of root ``symbol``."""
    return outright_pattern(symbol).match(raw_symbol) is not None


def expiry_key(raw_symbol: str, symbol: str, trade_year: int) -> tuple[int, int]:
    """(year, month) of an outright's expiry as seen on a trade date of ``trade_year``.

    The year is the smallest year >= ``trade_year - 1`` whose last one or two digits
    equal the symbol's digits: ``MGCZ9`` traded in 2024 is 2029, ``MGCG0`` traded in
    2019 is 2020, ``MGCZ24`` is 2024.

    Raises:
        ValueError: ``raw_symbol`` is not an outright of ``symbol``.
    """
    if not is_outright(raw_symbol, symbol):
        raise ValueError(f"{raw_symbol!r} is not an outright of {symbol!r}")
    tail = raw_symbol[len(symbol) :]
    month = MONTH_CODES.index(tail[0]) + 1
    digits = tail[1:]
    modulus = 10 ** len(digits)
    floor = trade_year - 1
    year = floor + (int(digits) - floor) % modulus
    return year, month
