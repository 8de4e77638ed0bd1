"""Who may do what (api-contract.md, "Who may do what"), as small pure checks.

Each check raises `Forbidden` or returns. Agency scope applies to every role: a token acts
on its own agency's records unless its agency is `*`. An *acting official* role (rating
official, HLR official, appointing authority, PRB member, the executive) only counts when
the token's subject is the official the request names; `hr_app` (and `admin` where listed)
may submit on anyone's behalf. `auditor` never writes, whatever other roles the token has.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from api.auth import ALL_AGENCIES, Principal, Role
from api.errors import Forbidden

if TYPE_CHECKING:
    from api.directory import Directory

OFFICIALS = frozenset(
    {Role.RATING_OFFICIAL, Role.HLR_OFFICIAL, Role.PRB_MEMBER, Role.APPOINTING_AUTHORITY}
)
#: Roles that read executives, appraisals and reports of their agency.
READERS = frozenset({Role.AUDITOR, Role.ADMIN, Role.HR_APP}) | OFFICIALS
LEDGER_READERS = frozenset({Role.AUDITOR, Role.ADMIN})
BUNDLE_READERS = frozenset({Role.AUDITOR, Role.ADMIN, Role.HR_APP})


def _scope(principal: Principal, agency: str | None) -> None:
    """The record's agency is not named: a token may not learn which agency holds an id."""
    if not principal.covers(agency):
        raise Forbidden(f"this token acts for agency {principal.agency!r} only")


def _roles(roles: Iterable[Role]) -> str:
    return ", ".join(sorted(r.value for r in roles)) or "none"


def forbid_auditor_writes(principal: Principal) -> None:
    """An auditor's token never writes, whatever other roles it holds (checked for a body
    that is not JSON too, `api.errors`)."""
    if principal.has(Role.AUDITOR):
        raise Forbidden("auditor tokens never write")


def require_write(
    principal: Principal,
    agency: str | None,
    *,
    roles: Collection[Role],
    acting: Mapping[Role, str | Collection[str]] | None = None,
) -> None:
    """A write: any of `roles`, or an `acting` role whose subject is the named official."""
    forbid_auditor_writes(principal)
    allowed = principal.has(*roles)
    for role, officials in (acting or {}).items():
        if allowed or role not in principal.roles:
            continue
        names = {officials} if isinstance(officials, str) else set(officials)
        allowed = principal.subject in names
    if not allowed:
        listed = _roles(set(roles) | set(acting or {}))
        raise Forbidden(
            f"this request needs one of the roles {listed}"
            + (" (an acting official only as itself)" if acting else "")
        )
    _scope(principal, agency)


def require_read(
    principal: Principal,
    agency: str | None,
    *,
    roles: Collection[Role] = READERS,
    owner: str | None = None,
) -> None:
    """A read of records of `agency`; an `executive` token only when it is the `owner`."""
    if not (
        principal.has(*roles)
        or (owner is not None and Role.EXECUTIVE in principal.roles and principal.subject == owner)
    ):
        raise Forbidden(
            f"this read needs one of the roles {_roles(roles)}"
            + (" or the executive's own token" if owner is not None else "")
        )
    _scope(principal, agency)


def require_role(principal: Principal, roles: Collection[Role]) -> None:
    """A ledger-wide read (events, verify): the role alone decides; rows are scoped after."""
    if not principal.has(*roles):
        raise Forbidden(f"this read needs one of the roles {_roles(roles)}")


def report_agency(principal: Principal, requested: str | None) -> str | None:
    """The agency a report covers: the token's own, or any agency for a `*` token."""
    require_role(principal, READERS)
    if requested is None:
        return None if principal.agency == ALL_AGENCIES else principal.agency
    _scope(principal, requested)
    return requested


def visible_streams(principal: Principal, directory: Directory) -> Callable[[str], bool] | None:
    """The streams whose events `principal` may read, for what a read tells beyond the
    records it shows: the day a replay at a position stands at is the day of the last event
    up to it (`ReadModels.default_as_of`), which may be another agency's or another
    executive's. None (every stream) for a `*` token of a reading role; a token of one
    agency: its agency's streams; an `executive` token without a reading role: its own
    record's (its stream and its appraisals')."""
    if principal.has(*READERS):
        if principal.agency == ALL_AGENCIES:
            return None
        agency = principal.agency
        return lambda stream_id: directory.agency_of(stream_id) == agency
    subject = principal.subject
    return lambda stream_id: directory.executive_of(stream_id) == subject


#: Body fields naming the official who acts on an appraisal (their id is the event's actor).
OFFICIAL_FIELDS = ("rating_official_id", "reviewer_id", "appointing_authority_id")


def forbid_own_appraisal(body: object, executive_id: str | None) -> None:
    """No one rates, reviews or decides on their own appraisal: not with a token of theirs
    that also holds an official's role, nor by `hr_app` naming them (PRB-3 says as much of
    board members; the board itself is checked there)."""
    for field in OFFICIAL_FIELDS:
        if executive_id is not None and getattr(body, field, None) == executive_id:
            raise Forbidden(
                f"{field} names {executive_id}, the appraisal's own executive: no one rates, "
                "reviews or decides on their own appraisal"
            )
