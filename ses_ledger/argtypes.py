"""argparse `type=` checks shared by the sub-commands: a bad value is a usage error (exit 2)
before anything runs, rather than a traceback or a silent misreading later."""

from __future__ import annotations

import argparse
import math


def _whole(text: str, least: int) -> int:
    """ASCII digits only, as the ledger positions (`cli_evidence._position`) and the API's
    integers: `int()` alone also read `--workers 1_0` as 10 and ` 2` or `+2` as 2. A minus
    sign is read, so that `-1` is told it is below the least, not that it is no number."""
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(
            f"must be a whole number written in digits 0-9, got {text!r}"
        )
    value = int(text)
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {least} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    return _whole(text, 0)


#: `serve --workers` at most: each worker is a process of its own (about 100 MB), and a
#: mistyped `--workers 1000` started processes until the machine stalled for minutes.
MAX_WORKERS = 64


def workers(text: str) -> int:
    """`serve --workers`: 1 to MAX_WORKERS."""
    value = _whole(text, 1)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_WORKERS} worker processes, got {value}"
        )
    return value


def port(text: str) -> int:
    """A TCP port to listen on: 0 (any free one) to 65535."""
    value = _whole(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port, 0 to 65535, got {value}")
    return value


def _seconds(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not ((value >= 0 if zero else value > 0) and math.isfinite(value)):
        least = "0 or more" if zero else "more than 0"
        raise argparse.ArgumentTypeError(f"must be {least} seconds, got {text}")
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text, zero=False)


def non_negative_seconds(text: str) -> float:
    """0 or more seconds, finite (0 where the option says it means off)."""
    return _seconds(text, zero=True)
