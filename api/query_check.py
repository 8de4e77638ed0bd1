"""Query parameters a path does not take are refused (422), not ignored.

An oversight request such as `compliance?as_of=2025-01-01` (a parameter another path takes)
or `below-fully-successful?asof=...` (a typo) was answered as if it were not there: today's
report, with nothing to tell the caller that the date they asked about was never read. A
parameter given twice (`after=5&after=7`) was read as its last value. Both are bad input,
and bad input gets a clear 4xx (the brief; RFC 9457 problem with each name's location).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant

from api.errors import InvalidRequest

#: Where a route keeps its query parameter names, read once from its dependency tree.
_NAMES = "_ses_ledger_query_names"


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters the matched route does not declare, or gives twice."""
    if not request.scope.get("query_string"):
        return  # the common case, writes above all: nothing to look at
    route: Any = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: frozenset[str] | None = getattr(route, _NAMES, None)
    if allowed is None:
        allowed = _query_names(dependant)
        setattr(route, _NAMES, allowed)
    given = Counter(name for name, _value in request.query_params.multi_items())
    unknown = sorted(name for name in given if name not in allowed)
    repeated = sorted(name for name, count in given.items() if count > 1 and name in allowed)
    if not unknown and not repeated:
        return
    takes = ", ".join(sorted(allowed)) or "none"
    parts = []
    if unknown:
        parts.append(f"{', '.join(unknown)}: not a query parameter of this path")
    if repeated:
        parts.append(f"{', '.join(repeated)}: given more than once")
    raise InvalidRequest(
        f"{'; '.join(parts)} (it takes: {takes})",
        [{"loc": ["query", n], "msg": "not a parameter of this path"} for n in unknown]
        + [{"loc": ["query", n], "msg": "given more than once"} for n in repeated],
    )
