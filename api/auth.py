"""Bearer tokens: HS256 JWTs signed with a secret kept under SES_LEDGER_HOME.

HS256 because the server both issues (through `ses-ledger token issue`) and checks tokens:
one secret, no public-key distribution, and a check costs microseconds on the hot path.
The secret (`<home>/token.key`, 32 random bytes, mode 0600) is created on first use, by
whichever of the CLI or the server gets there first (O_EXCL makes the race harmless).
It is not the ledger's signing key: leaking it lets someone submit, never forge history.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt

from ledger.config import TOKEN_KEY_FILE, make_private_dir
from ledger.files import write_file

ALGORITHM = "HS256"
ALL_AGENCIES = "*"
#: Subjects and agencies are ids: no spaces, slashes or control characters. Matched whole
#: (`fullmatch`): `re`'s `$` also matches before a final newline.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}$"
#: An actor as an entry may record it: an id, or an id and one line feed, which servers
#: before 2026-12-01 took as a token subject (`hr-1\n`) and recorded as `actor`: the audit
#: trail (API and `ses-ledger audit --actor`) is asked for such an actor by exactly that.
RECORDED_ACTOR_PATTERN = ID_PATTERN.removesuffix("$") + r"\n?$"
_ID = re.compile(ID_PATTERN)


class Role(StrEnum):
    HR_APP = "hr_app"
    RATING_OFFICIAL = "rating_official"
    EXECUTIVE = "executive"
    HLR_OFFICIAL = "hlr_official"
    PRB_MEMBER = "prb_member"
    APPOINTING_AUTHORITY = "appointing_authority"
    AUDITOR = "auditor"
    ADMIN = "admin"


class TokenError(Exception):
    """The token is missing, malformed, expired, badly signed or has unusable claims."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, roles and agency (`*`: every agency)."""

    subject: str
    roles: frozenset[Role]
    agency: str

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def covers(self, agency: str | None) -> bool:
        """True when the token may act on records of `agency`."""
        return self.agency == ALL_AGENCIES or (agency is not None and agency == self.agency)


def load_or_create_token_key(home: Path) -> bytes:
    """The HS256 secret under `home`, created (mode 0600) if it does not exist yet."""
    path = Path(home) / TOKEN_KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    make_private_dir(path.parent)
    try:
        _write_new_key(path)
    except FileExistsError:
        pass  # another process created it first
    return _read_key(path)


def rotate_token_key(home: Path) -> None:
    """Replace the HS256 secret under `home` (atomically, mode 0600): every token signed
    with the old one is refused from then on, by running servers too (`TokenVerifier`)."""
    path = Path(home) / TOKEN_KEY_FILE
    make_private_dir(path.parent)
    _write_new_key(path, replace=True)


def _write_new_key(path: Path, *, replace: bool = False) -> None:
    """A new random secret, mode 0600, whole or not at all (`ledger.files.write_file`):
    without `replace`, in a file that must not exist yet (FileExistsError)."""
    write_file(path, (secrets.token_hex(32) + "\n").encode(), 0o600, replace=replace)


def _key_text(path: Path) -> str:
    """The token key file's text: hex, a byte order mark (an editor's 'UTF-8 with BOM') and
    white space (a final line feed, CR LF) around it left out."""
    return path.read_text(encoding="utf-8-sig").strip()


def _read_key(path: Path) -> bytes:
    for _ in range(50):  # a concurrent creator may not have written it yet
        text = _key_text(path)
        if text:
            try:
                return bytes.fromhex(text)
            except ValueError:  # said of the file: `serve` said only what fromhex() said
                raise TokenError(f"the token key {path} is not hex text") from None
        time.sleep(0.01)
    raise TokenError(f"the token key {path} is empty")


#: The longest a token may live: a year. A leaked token lives that long unless the key is
#: rotated (`ses-ledger token rotate-key`), which ends every token at once.
MAX_TTL_SECONDS = 366 * 24 * 3600


def issue_token(
    key: bytes,
    *,
    subject: str,
    roles: Iterable[str],
    agency: str,
    ttl_seconds: int,
    now: float | None = None,
) -> str:
    """A signed token; raises ValueError for claims the server would refuse."""
    role_list = sorted({Role(r).value for r in roles})
    if not role_list:
        raise ValueError("a token needs at least one role")
    if not _ID.fullmatch(subject):
        raise ValueError(f"subject {subject!r} is not a valid id")
    if agency != ALL_AGENCIES and not _ID.fullmatch(agency):
        raise ValueError(f"agency {agency!r} is not a valid agency code or '*'")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(
            f"the time to live must be 1 to {MAX_TTL_SECONDS} seconds (a year), got {ttl_seconds}"
        )
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "roles": role_list,
        "agency": agency,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_token(token: str, key: bytes, leeway: float = 2.0) -> Principal:
    """Check signature, expiry (with `leeway` seconds) and claims; raise TokenError."""
    return _verify(token, key, leeway)[0]


def _verify(token: str, key: bytes, leeway: float) -> tuple[Principal, int]:
    """`decode_token`'s checks; returns the principal and the token's `exp`."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            leeway=leeway,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(_reason(exc)) from None
    subject, roles, agency = claims.get("sub"), claims.get("roles"), claims.get("agency")
    if not isinstance(subject, str) or not _ID.fullmatch(subject):
        raise TokenError("the token's subject is not a valid id")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise TokenError("the token has no roles")
    try:
        role_set = frozenset(Role(r) for r in roles)
    except ValueError:
        raise TokenError("the token names an unknown role") from None
    if not isinstance(agency, str) or not (agency == ALL_AGENCIES or _ID.fullmatch(agency)):
        raise TokenError("the token's agency is not valid")
    # PyJWT checked `exp` as int(exp), against the clock with the leeway
    return Principal(subject=subject, roles=role_set, agency=agency), int(claims["exp"])


class TokenVerifier:
    """`decode_token` with the verified tokens remembered, by their exact text, until they
    expire: a client sends the same token on every request, and checking its HMAC and
    claims again each time cost more CPU than many whole requests' other work.

    Only tokens that passed every check are remembered, with their `exp`; a remembered
    token is refused once `exp` has passed (with the same leeway), exactly as a fresh check
    would refuse it. The other time claims cannot turn a valid token invalid later.

    With `path`, the key file is looked at again at most every `reload_every` seconds, and
    a changed key (`ses-ledger token rotate-key`) replaces the old one and forgets every
    remembered token: a leaked token stops working without a restart. A key file that
    cannot be read leaves the current key in use.
    """

    LIMIT = 10_000

    def __init__(
        self,
        key: bytes,
        leeway: float = 2.0,
        *,
        path: Path | None = None,
        reload_every: float = 1.0,
    ) -> None:
        self.key = key
        self.leeway = leeway
        self.path = path
        self.reload_every = reload_every
        self._looked = time.monotonic()
        self._verified: dict[str, tuple[Principal, int]] = {}

    def _reload(self) -> None:
        assert self.path is not None
        self._looked = time.monotonic()
        try:
            text = _key_text(self.path)
            key = bytes.fromhex(text) if text else self.key
        except (OSError, ValueError):
            return
        if key != self.key:
            self.key = key
            self._verified = {}

    def __call__(self, token: str) -> Principal:
        if self.path is not None and time.monotonic() - self._looked >= self.reload_every:
            self._reload()
        found = self._verified.get(token)
        if found is not None:
            principal, expires = found
            if expires <= time.time() - self.leeway:  # as PyJWT: exp <= now - leeway
                self._verified.pop(token, None)
                raise TokenError("the token has expired")
            return principal
        principal, expires = _verify(token, self.key, self.leeway)
        if len(self._verified) >= self.LIMIT:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):  # `nbf` or `iat` ahead of the clock
        return "the token is not valid yet"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim"
    return "the token is malformed or not signed by this server"
