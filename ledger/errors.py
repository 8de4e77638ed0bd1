"""The ledger's error hierarchy.

One root, `LedgerError`, so callers can catch everything the ledger raises on purpose.
HTTP status mapping lives only in `api/`; these classes carry just what a person needs:
the rule ID (rules.md) and a sentence.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger raises deliberately."""


class RuleViolation(LedgerError):
    """A command broke a rule marked *enforce* in rules.md; nothing was recorded."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


class NotFound(LedgerError):
    """The command named a stream that does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} does not exist")
        self.kind = kind
        self.ident = ident


class UnknownReference(LedgerError):
    """A command's body refers to something (executive, board, appraisal) that does not exist,
    or not as what the command needs (`why`: the sentence that says so)."""

    def __init__(self, field: str, ident: str, why: str | None = None) -> None:
        super().__init__(
            f"{field} {ident!r} " + (why or "does not refer to anything recorded in the ledger")
        )
        self.field = field
        self.ident = ident


class AlreadyExists(LedgerError):
    """A create command used an id that is already taken."""

    def __init__(self, kind: str, ident: str, held_by: str | None = None, note: str = "") -> None:
        """`held_by`: the kind of record that holds the id, when it is not a `kind` (clients
        name executives, review boards and appraisals, and waivers are stored, under one
        set of ids); `note`: what follows from that (said only then)."""
        if held_by is None or held_by == kind:
            message = f"{kind} {ident!r} already exists"
        else:
            message = (
                f"{kind} {ident!r} cannot be created: the id is taken by the {held_by} "
                f"{ident!r}{note}"
            )
        super().__init__(message)
        self.kind = kind
        self.ident = ident


class ConcurrencyConflict(LedgerError):
    """Another writer appended to the same stream first (optimistic concurrency)."""


class StaleVersion(LedgerError):
    """The caller's expected stream version is not the current one."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, but the stream is at version {actual}")
        self.expected = expected
        self.actual = actual


class VerificationError(LedgerError):
    """Stored data does not verify (hash, chain, signature, Merkle root or proof)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"position {position}: {message}")
        self.position = position
        self.message = message


class BundleDoesNotVerify(VerificationError):
    """An evidence bundle made from the stored events does not verify, so none is handed
    out: `problems` are (position or None, what the offline verifier found there)."""

    #: How many problems the message spells out; the rest are counted.
    SHOWN = 5

    def __init__(self, executive_id: str, problems: list[tuple[int | None, str]]) -> None:
        self.problems = problems
        self.positions = sorted({p for p, _ in problems if p is not None})
        shown = "; ".join(text for _, text in problems[: self.SHOWN])
        more = len(problems) - self.SHOWN
        named = ", ".join(map(str, self.positions))
        where = (
            f"the stored entries at positions {named} do not"
            if len(self.positions) > 1
            else f"the stored entry at position {named} does not"
            if self.positions
            else "the stored entries do not"
        )
        super().__init__(
            f"the bundle of {executive_id} does not verify, so none was made: {where} "
            f"verify ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "); run `ses-ledger verify` to check the whole ledger"
        )
        # the first bad position (the sentence above names them all, unprefixed)
        self.position = self.positions[0] if self.positions else None


class UnreadableEntry(VerificationError, ValueError):
    """A stored state that is not a stored entry (cut short, rewritten by hand): stored data
    that cannot be read, so it does not verify (the API's 500 `ledger-integrity`, not an
    unforeseen error). Also a ValueError, as the readers that report such a state (`verify`)
    catch."""


class SigningKeyError(LedgerError):
    """Signing keys are missing or unreadable."""


class ConfigurationError(LedgerError):
    """A setting (an environment variable) has a value the ledger cannot use."""


class StoreUnavailable(LedgerError):
    """The configured store cannot be used: a malformed SES_LEDGER_DB, a server that refuses
    or does not answer, a file that cannot be opened. Nothing was read or written."""


class NoLedger(StoreUnavailable):
    """The store can be used but holds no ledger (a missing SQLite file, a schema or file
    without the ledger's tables), asked of by a command that only reads one."""


class StoreUnreachable(StoreUnavailable, ConnectionError):
    """No connection to the PostgreSQL store could be had within `SES_LEDGER_STORE_WAIT_SECONDS`
    (the server is down, refuses, or every connection is busy): nothing was sent, so nothing
    was read or written. Not retried where it is raised (the wait was the retry); the API
    answers 503 `unavailable`. Also a ConnectionError, so that the loops that keep going
    through a lost connection (the projector's, `project --follow`'s) take it as one."""


class WriteOutcomeUnknown(LedgerError):
    """A write's COMMIT failed (a lost PostgreSQL connection, an SQLite I/O error) and the
    store could not be asked afterwards whether the commit happened: the write may or may
    not have been recorded. Not "nothing was recorded": a client that believed that and retried
    without its Idempotency-Key would append the event twice."""


class ReplayBusy(LedgerError):
    """Every slot for building a historical replay is taken in this process (the read
    models as of a position or time, `projections.replays`): retry shortly."""


def out_of_resources(exc: BaseException) -> bool:
    """Whether `exc` says the process ran out of memory or could not start a thread
    (RLIMIT_AS, cgroup limits, RLIMIT_NPROC): a passing condition, not a bug; the API
    answers it 503 and the command line exits 71, each in one line."""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)
    )
