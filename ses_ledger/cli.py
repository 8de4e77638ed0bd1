"""`ses-ledger`: the command-line tool (keys, verify, demo, serve, projections, bundles)."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledger.config import LedgerConfig
from ledger.errors import LedgerError, StoreUnavailable, VerificationError, out_of_resources

if TYPE_CHECKING:
    from ledger.application import LedgerApp

Handler = Callable[[argparse.Namespace], int]

#: Exit status when the store cannot be used (bad SES_LEDGER_DB, server down, unopenable
#: file), so scripts can tell "try again later" from a refused command (2): sysexits.h's
#: EX_UNAVAILABLE (uvicorn already uses 3 for a server that failed to start).
EXIT_STORE = 69
#: Exit status when the output was closed early (a pipe): 128 + SIGPIPE, as a shell reports.
EXIT_PIPE = 141
#: Exit status when the output cannot be written (`> file` on a full disk, a closed stdout):
#: sysexits.h's EX_IOERR, apart from 69, which says the store or the home is at fault.
EXIT_OUTPUT = 74
#: Exit status when the process ran out of memory or could not start a thread (RLIMIT_AS, a
#: cgroup's limit): sysexits.h's EX_OSERR. Not 1, which says a check failed (`verify` ran
#: out of memory and exited 1 with a traceback, as if the ledger did not verify).
EXIT_RESOURCES = 71


class OutputFailed(Exception):
    """Standard output could not be written (not an OSError: a command's own `except
    OSError` around its files must not take it for one of theirs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _GuardedOutput:
    """sys.stdout, with its write failures told apart from the ledger's own: "No space left
    on device" from `ses-ledger audit --json > /full/disk/audit.json` was reported as the
    store's failure (69). A closed pipe stays BrokenPipeError (141)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:  # str; bytes on the buffer
        try:
            return int(_output(self._stream.write, text))
        except UnicodeEncodeError:
            # An output whose encoding cannot say the text (PYTHONIOENCODING=ascii, LC_ALL=C
            # with PYTHONUTF8=0) and a record beyond it (a name, a narrative): what it cannot
            # say is escaped (\xeb, \u0141), as Python writes stderr. It ended `replay` and
            # `bundle verify` in a traceback, the verifier's with 1, a failed check's status.
            encoding = self._stream.encoding
            escaped = text.encode(encoding, "backslashreplace").decode(encoding)
            return int(_output(self._stream.write, escaped))

    def flush(self) -> None:
        _output(self._stream.flush)

    @property
    def buffer(self) -> Any:
        """The bytes beneath (`ses_ledger.outputs.write_exact`), their failures told too."""
        return _GuardedOutput(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _output(call: Callable[..., Any], *args: Any) -> Any:
    """`call` on standard output, its failures told as OutputFailed (a closed pipe stays
    BrokenPipeError)."""
    try:
        return call(*args)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputFailed(exc.strerror or str(exc)) from exc


def _stdout_to_devnull() -> None:
    """Point standard output at /dev/null, so that the exit does not fail again flushing
    it (Python's own recipe for a closed pipe)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # no file descriptor behind it (a test's capture)


def _config() -> LedgerConfig:
    return LedgerConfig.from_env()


def cmd_keys_init(args: argparse.Namespace) -> int:
    from ledger.keys import KeyRing
    from ses_ledger.bootstrap import build_app

    config = _config()
    ring = KeyRing(config.home)
    if ring.exists():
        print(f"existing signing key {ring.init()} under {ring.dir}")
        return 0
    # A ledger that already holds events was signed with keys kept elsewhere: a new key here
    # would sign a second history beside it, and `verify` would call every old event
    # tampered with. (The store is probed first, so a mistyped SES_LEDGER_DB fails here.)
    app = build_app(config)  # kept while used: a dropped app closes its store
    held = int(app.recorder.max_notification_id() or 0)
    if held:
        print(
            f"ses-ledger: {config.redacted_db_url()} already holds {held} events, signed with "
            f"keys that are not under {ring.dir}: restore that directory from the ledger's "
            "backup (`ses-ledger backup --with-secrets`, or a copy of it); a new key would "
            "start a second history",
            file=sys.stderr,
        )
        return 2
    print(f"new signing key {ring.init()} under {ring.dir}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from ledger.keys import KeyRing

    config = _config()
    ring = KeyRing(config.home)
    # Opened first: a store that cannot be used is reported (exit 69) before a key is
    # written; the ledger is read only after the new key is published (below).
    app = _ledger_if_any(config)
    failed: list[Exception] = []

    def close_at(closing: set[str]) -> datetime:
        # Taken once the new key is published, not before: a running server signs with the
        # old key until then, and reading the ledger for the latest `recorded_at` takes
        # seconds on a large one, so a time taken first left that server's writes outside
        # the old key's window (verify failed them). Every event the old key signed is
        # stamped before this clock reading, or recorded by the time the ledger is read.
        # `closing`: the keys this rotation closes, read with the ring it rewrites (under
        # its lock: another rotation may have run while this one waited for it).
        published = datetime.now(UTC)
        try:
            latest = _latest_recorded_at(app, closing)
        except Exception as exc:
            # The store failed after the new key was published: the old key is closed at
            # the clock's time rather than left open beside it, and the failure reported.
            failed.append(exc)
            return published
        return max(published, latest or published)

    try:
        # The new key's `valid_from` is taken by the rotation, once it holds the ring.
        key_id = ring.rotate(close_at=close_at)
    finally:
        if app is not None:
            app.close()
    if failed:
        print(
            f"ses-ledger: new signing key {key_id}, but the ledger could not be read to close "
            "the old key no earlier than the entries it signed: it was closed at the clock's "
            "time; run `ses-ledger verify`",
            file=sys.stderr,
        )
        raise failed[0]
    print(f"new signing key {key_id}; earlier public keys are kept for verification")
    return 0


def _ledger_if_any(config: LedgerConfig) -> LedgerApp | None:
    """The ledger at `config` (None: no ledger there yet, e.g. a key ring made first); a
    store that cannot be used raises, as for every command (README: exit 69)."""
    from ledger.errors import NoLedger
    from ses_ledger.bootstrap import build_app

    try:
        return build_app(config, existing=True)
    except NoLedger:
        return None


def _latest_recorded_at(app: LedgerApp | None, key_ids: set[str]) -> datetime | None:
    """The latest `recorded_at` of the events signed by `key_ids` (None: no ledger, or none).

    `keys rotate` closes the current key no earlier than this (and opens the new one at the
    clock's time, for the events stamped from now on): after a clock that ran ahead was set
    back, a key closed at the clock's time would end before events it signed, and `verify`
    would hold those events to be outside its validity. The latest, not the last event's:
    writes stamped by the corrected clock may follow them. Every event is read (rotation
    is rare; `verify` reads them all too); an entry that cannot be read is `verify`'s to
    report, not this.
    """
    from ledger.entry import entry_from_state, parse_timestamp

    if app is None:
        return None
    latest: datetime | None = None
    head = int(app.recorder.max_notification_id() or 0)
    start = 1
    while start <= head:
        page = app.recorder.select_notifications(start=start, limit=5000, stop=head)
        if not page:
            break
        for notification in page:
            try:
                entry = entry_from_state(notification.state)
                if entry["key_id"] not in key_ids:
                    continue
                moment = parse_timestamp(str(entry["recorded_at"]))
            except (ValueError, KeyError):
                continue  # an entry that cannot be read is verify's to report
            if latest is None or moment > latest:
                latest = moment
        start = int(page[-1].id) + 1
    return latest


def cmd_keys_list(args: argparse.Namespace) -> int:
    from ledger.keys import KeyRing

    for key in KeyRing(_config().home).public_keys():
        info = key.as_json()
        print(f"{info['key_id']}  {info['valid_from']} .. {info['valid_until'] or 'current'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ledger.verify import readable_head, verify_with_ring
    from ses_ledger.bootstrap import build_app
    from ses_ledger.progress import Progress

    config = replace(_config(), read_only=True)  # an archive on read-only media too
    app = build_app(config, existing=True)
    total = readable_head(app.recorder)  # the bar's length; verify names any damage
    with Progress(total=total, desc="verifying", disable=args.quiet) as bar:
        report = verify_with_ring(app.recorder, app.keyring, config.origin, bar.update_to)
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.ok:
        print(
            f"ledger verified: {report.checked} events, tree size {report.tree_size}, "
            f"root {report.root}"
        )
        return 0
    print(f"first bad position: {report.first_bad_position}")
    print(f"problem: {report.problem}")
    if len(report.problems) > 1:
        print(f"({len(report.problems) - 1} further problems follow from it or stand apart)")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ses-ledger",
        description=(
            "SES Ledger: a tamper-evident, event-sourced audit ledger of SES performance "
            "appraisals. Data lives under SES_LEDGER_HOME (default ./.ses-ledger); "
            "SES_LEDGER_DB=postgresql://... selects PostgreSQL instead of SQLite."
        ),
        epilog=(
            "Exit status: 0 done; 1 a check failed or nothing matched (verify, restore, "
            "bundle export, bundle verify, witness, replay, audit, projections status "
            "--max-lag), or serve could not bind its port; 2 a refused command, bad input, "
            "or a check that could not be made "
            "(bundle verify, witness); 3 a server worker failed to start (serve); "
            f"{EXIT_STORE} the store or the ledger's home cannot be used (a server down, a full "
            f"disk, a damaged file: the reason is printed); {EXIT_RESOURCES} the process ran out "
            f"of memory or threads; {EXIT_OUTPUT} the output could not "
            "be written (a full disk under `> FILE`; what the command did stands); 130 "
            f"interrupted; {EXIT_PIPE} the output was closed early (a pipe)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = sub.add_parser("keys", help="manage the ledger's Ed25519 signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_sub.add_parser(
        "init",
        help="create the first signing key (mode 0600); does nothing when the key ring exists "
        "(exit 2 if its current private key cannot be loaded: restore it or `keys rotate`), "
        "and refuses a ledger that already holds events signed elsewhere",
    ).set_defaults(handler=cmd_keys_init)
    keys_sub.add_parser(
        "rotate",
        help="start a new signing key; old public keys stay valid for old events (the current "
        "key is closed no earlier than the latest recorded_at it signed)",
        description="Rotations take turns (a lock on keys/keyring.lock; so do backup and "
        "restore). A store that cannot be used is reported (exit 69) before a key is written, "
        "the ring untouched; one that fails once the new key is published leaves the old key "
        "closed at the clock's time, says so, and exits 69: run `ses-ledger verify` then.",
    ).set_defaults(handler=cmd_keys_rotate)
    keys_sub.add_parser("list", help="list public keys and their validity").set_defaults(
        handler=cmd_keys_list
    )

    verify = sub.add_parser(
        "verify",
        help="re-check every hash, chain link, signature, Merkle leaf and checkpoint, and "
        "each event's recorded_at against its signing key's validity",
        description="Exit status 0 when everything holds; 1 with the first bad position. "
        "Lines starting 'warning:' name what holds but should be read: recorded_at going "
        "back in log order, and events recorded before 2026-12-01 outside their key's "
        "validity (servers before that date's fix signed so around a rotation); from "
        "2026-12-01 on, an event outside its key's validity fails.",
    )
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    verify.set_defaults(handler=cmd_verify)

    for register in _EXTENSIONS:
        register(sub)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Each sub-command's own `--help` opens with what the list of commands says it does
    (`keys rotate --help` printed a usage line alone), then its description, if any."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for choice in action._choices_actions:
            child = action.choices[choice.dest]
            summary = (choice.help or "").strip()
            if summary:
                summary = summary[0].upper() + summary[1:]
                summary += "" if summary.endswith(".") else "."
                child.description = " ".join(filter(None, (summary, child.description)))
            _describe(child)


#: Sub-command registrars added by other modules (demo, serve, projections, bundles).
_EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _load_extensions() -> None:
    import importlib

    if _EXTENSIONS:
        return
    for name in (
        "ses_ledger.cli_demo",
        "ses_ledger.cli_serve",
        "ses_ledger.cli_projections",
        "ses_ledger.cli_tokens",
        "ses_ledger.cli_evidence",
        "ses_ledger.cli_backup",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        _EXTENSIONS.append(module.register)


def main(argv: Sequence[str] | None = None) -> int:
    _load_extensions()
    args = build_parser().parse_args(argv)
    with _session_name(args.command):
        return _guarded(args)


def _guarded(args: argparse.Namespace) -> int:
    stdout = sys.stdout
    if stdout is None:
        # Started with its standard output closed (`>&-`): Python then drops what is printed,
        # as into /dev/null (a server's log goes to stderr). Nothing to guard or flush.
        return _run(args)
    sys.stdout = _GuardedOutput(stdout)
    try:
        return _run(args)
    finally:
        sys.stdout = stdout


@contextmanager
def _session_name(command: str) -> Iterator[None]:
    """Name the command's PostgreSQL sessions `ses-ledger COMMAND` (libpq's PGAPPNAME, which
    `serve`'s workers and a rebuild's processes inherit), unless the environment names them:
    `pg_stat_activity.application_name` then tells the API's sessions from the projector's
    and from other programs', as an operator looking for a process's sessions needs."""
    if os.environ.get("PGAPPNAME"):
        yield
        return
    os.environ["PGAPPNAME"] = f"ses-ledger {command}"
    try:
        yield
    finally:  # main() called in-process (tests) leaves the environment as it found it
        os.environ.pop("PGAPPNAME", None)


def _run(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    from eventsourcing.persistence import DatabaseError, InterfaceError

    try:
        status = handler(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, where a closed pipe is caught, not at the exit
        return status
    except OutputFailed as exc:
        # What the command did stands (a checkpoint issued, a key made); its report did not
        # reach the output. Nothing more is written there (the exit would fail again).
        print(f"ses-ledger: cannot write the output: {exc.reason}", file=sys.stderr)
        _stdout_to_devnull()
        return EXIT_OUTPUT
    except StoreUnavailable as exc:
        print(f"ses-ledger: {exc}", file=sys.stderr)
        return EXIT_STORE
    except (DatabaseError, InterfaceError, sqlite3.DatabaseError) as exc:
        # The store went away (or timed out) during the command, or its file is damaged
        # ("database disk image is malformed"); what was committed stays.
        from ledger.store_probe import READ_ONLY_HINT, privilege_hint

        text = " ".join(str(exc).split())
        hint = READ_ONLY_HINT if "readonly database" in text else privilege_hint(exc)
        print(f"ses-ledger: the store failed: {text}{hint}", file=sys.stderr)
        return EXIT_STORE
    except VerificationError as exc:
        # Stored data that does not verify (an entry cut short or rewritten by hand, met by
        # `audit`, `replay` or an export): a failed check, status 1, as `verify` says of it.
        print(f"ses-ledger: {exc}", file=sys.stderr)
        return 1
    except LedgerError as exc:
        print(f"ses-ledger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ses-ledger: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours, and nothing to report
        # to it.
        _stdout_to_devnull()
        return EXIT_PIPE
    except OSError as exc:
        # The ledger's home cannot be written or read (a full disk, a read-only file system):
        # what was written stays whole (`ledger.files`), and the reason is one line.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ses-ledger: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_STORE
    except (MemoryError, RuntimeError) as exc:
        if not out_of_resources(exc):
            raise
        # What was committed stays (each write is one transaction); what was under way was
        # rolled back. No traceback: formatting one needs the memory that ran out.
        print(
            "ses-ledger: out of memory (or threads): the command stopped; what it had "
            "committed stays, run it again with more memory",
            file=sys.stderr,
        )
        return EXIT_RESOURCES


if __name__ == "__main__":
    sys.exit(main())
