"""`ses-ledger replay | bundle | witness | checkpoint`: evidence for people outside the ledger.

- `replay`: an executive's appraisals, ratings and removal history as the ledger stood at a
  position or a recorded-at time, with the events that produced them (the projections,
  rebuilt privately from those events only).
- `bundle export` / `bundle verify`: the offline evidence bundle; verification runs the
  standalone `ledger/offline_verify.py`, optionally fetching the consistency proof that ties
  an old bundle to a newer checkpoint.
- `witness`: compare the server's checkpoint with the one saved last time.
- `checkpoint`: sign a checkpoint of the current tree now and print it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import tempfile
import urllib.parse
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from api.auth import ID_PATTERN, RECORDED_ACTOR_PATTERN  # ids as the API accepts them
from ledger.config import LedgerConfig
from ses_ledger.argtypes import positive_seconds
from ses_ledger.outputs import unwritable, write_exact


def _app(*, read_only: bool = False) -> Any:
    """The configured ledger: every command here reads or checks one, so a store that holds
    none (a mistyped home or schema) is refused rather than created empty. `read_only`: the
    command writes nothing, so an SQLite file that cannot be written (an archive handed on
    read-only media) is opened read-only (`LedgerConfig.sqlite_database`)."""
    from ses_ledger.bootstrap import build_app

    return build_app(replace(LedgerConfig.from_env(), read_only=read_only), existing=True)


# --- replay ----------------------------------------------------------------------------------


def _position(text: str) -> int:
    """A ledger position (argparse type): a whole number, 0 or more, written in ASCII digits
    and at most the API's largest (2**53 - 1, `api.schemas.common.MAX_POSITION`): `int()`
    alone also read "1_0" as 10, and a number past SQLite's 64-bit integers reached the
    store and ended in a traceback."""
    from api.schemas.common import MAX_POSITION

    if not (text.isascii() and text.isdigit()) or int(text) > MAX_POSITION:
        raise argparse.ArgumentTypeError(
            f"must be a whole number, 0 or more (at most {MAX_POSITION}), got {text!r}"
        )
    return int(text)


def _ident(text: str) -> str:
    """An executive, appraisal or actor id (argparse type): refused here when no id can be it."""
    if not re.fullmatch(ID_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"must be an id: 1-128 characters of A-Z a-z 0-9 . _ : @ + -, the first a letter "
            f"or digit, got {text!r}"
        )
    return text


def _actor(text: str) -> str:
    """An actor id (argparse type), as `_ident`, or one recorded by a server before 2026-12-01
    with a trailing line feed (a token subject `hr-1\\n`), which the trail lists alone."""
    if re.fullmatch(RECORDED_ACTOR_PATTERN, text):
        return text
    return _ident(text)


def _tree_size(text: str) -> int:
    """A tree size (argparse type): a whole number, 1 or more."""
    value = _position(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a tree size, 1 or more, got {text!r}")
    return value


def _url(text: str) -> str:
    """A ledger API base URL (argparse type): http:// or https:// and a host."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"must be the ledger API's base URL, e.g. http://127.0.0.1:8000, got {text!r}"
        )
    if parts.username is not None or parts.password is not None:
        # Not echoed: the URL is printed in every finding and saved in a witness's state,
        # and the endpoints asked (checkpoint, keys, proofs) take no credentials anyway.
        raise argparse.ArgumentTypeError(
            "must not hold a user name or password (user:password@): the ledger's "
            "checkpoint, key list and proofs are public, and the URL is printed and saved"
        )
    return text


def _timestamp(text: str) -> str:
    """An RFC 3339 timestamp (argparse type), kept as given; refused here, not in a traceback."""
    from projections.queries import normalise_known_at

    try:
        normalise_known_at(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an RFC 3339 timestamp, e.g. 2025-01-01T00:00:00Z, got {text!r}"
        ) from None
    return text


def _day(text: str) -> date:
    """A date, YYYY-MM-DD (argparse type)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date, YYYY-MM-DD, got {text!r}") from None


#: The deployment's REM-2/REM-3 window measure, as the API server reads it (`api.settings`).
WINDOW_MEASURE_VARIABLE = "SES_LEDGER_WINDOW_MEASURE"


def window_measure(args: argparse.Namespace) -> str:
    """`--window-measure`, else the deployment's `SES_LEDGER_WINDOW_MEASURE` (the measure the
    API's removal histories and compliance report use when asked without one), else
    `rating-date`: so that `replay` judges REM-2/REM-3 as the server of that deployment does."""
    from ledger.errors import ConfigurationError
    from ledger.policies.removal import RATING_DATE, WINDOW_MEASURES

    if args.window_measure is not None:
        return str(args.window_measure)
    # matched by name without regard to case, as the server's settings match it
    # (an empty value is an unset one, as for every SES_LEDGER_* variable)
    values = [v for k, v in os.environ.items() if k.upper() == WINDOW_MEASURE_VARIABLE and v]
    if not values:
        return RATING_DATE
    if values[-1] not in WINDOW_MEASURES:
        raise ConfigurationError(
            f"bad setting: {WINDOW_MEASURE_VARIABLE} must be one of "
            f"{', '.join(WINDOW_MEASURES)}, got {values[-1]!r}"
        )
    return values[-1]


def replay(app: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    """The executive's record as the ledger stood then, JSON-ready; None if unknown then."""
    from projections.queries import ReadModels
    from projections.store import MemoryStore

    # The view is built in memory (`as_of`); on a ledger that cannot be written, so is the
    # facade it comes from, which would otherwise create the read models' tables first.
    store = MemoryStore() if app.config.opens_read_only else None
    head = int(app.recorder.max_notification_id() or 0)  # read first: the replay covers it
    view = ReadModels(app, store=store, window_measure=window_measure(args)).as_of(
        position=args.as_of_position, known_at=args.known_at, executive_id=args.executive
    )
    executive = view.executive(args.executive)
    if executive is None:
        return None
    events = view.audit(executive_id=args.executive)
    # `--as-of`, else the day the ledger stood at, as the API's replays take it
    as_of = args.as_of or view.default_as_of()
    appraisals = []
    for appraisal_id in view.executive_appraisal_ids(args.executive):
        doc = view.appraisal(appraisal_id) or {}
        appraisals.append(
            {
                k: doc.get(k)
                for k in (
                    "appraisal_id",
                    "policy",
                    "stage",
                    "period_start",
                    "period_end",
                    "initial_rating",
                    "final_rating",
                    "version",
                )
            }
        )
    return {
        "executive_id": args.executive,
        "as_of_position": args.as_of_position,
        "known_at": args.known_at,
        "head": head,
        "executive": executive,
        "appraisals": appraisals,
        "ratings": view.ratings(args.executive)["ratings"],
        "removal_history": view.removal_history(args.executive, as_of),
        "events": events,
    }


def _rating_text(rating: dict[str, Any] | None, with_score: bool) -> str:
    if not rating:
        return "none"
    score = f"score {rating.get('score')}, " if with_score else ""
    level = rating.get("summary_level", rating.get("level"))
    return f"{score}Level {level}, rated {rating.get('rated_on')}"


def replay_lines(record: dict[str, Any]) -> list[str]:
    ex = record["executive"]
    out = [
        f"executive {record['executive_id']}: {ex.get('name')}, {ex.get('title')}, "
        f"{ex.get('agency')}, {ex.get('appointment_type')} "
        f"(the ledger as it stood at {_point(record['as_of_position'], record['known_at'])})",
    ]
    beyond = _beyond_head(record)
    if beyond:
        out.append(beyond)
    out.append("appraisals:")
    for a in record["appraisals"]:
        out.append(
            f"  {a['appraisal_id']}: {a['policy']}, {a['period_start']} to {a['period_end']}, "
            f"stage {a['stage']}; initial {_rating_text(a['initial_rating'], True)}; "
            f"final {_rating_text(a['final_rating'], False)}"
        )
    out.append("final ratings (oldest first):")
    out += [
        f"  {r['appraisal_id']}: Level {r['level']}, score {r['score']}, rated {r['rated_on']}"
        for r in record["ratings"]
    ] or ["  none"]
    rh = record["removal_history"]
    out.append(f"removal history as of {rh['as_of']} (measure: {rh['window_measure']}):")
    for label in ("three_year", "five_year"):
        w = rh[label]
        listed = ", ".join(
            f"{r['appraisal_id']} L{r['level']} {r['rated_on']}" for r in w["ratings"]
        )
        verdict = (
            f"removal required, triggered on {w['triggered_on']}"
            if w["removal_required"]
            else "no removal required"
        )
        out.append(f"  {label} ({w['rule']}): {listed or 'no ratings in window'}; {verdict}")
    out.append(f"  level 1 action due (REM-1): {'yes' if rh['level1_action_due'] else 'no'}")
    for action in rh["actions"]:
        out.append(
            f"  action: {action['action']}, notice {action['notice_on']}, "
            f"effective {action['effective_on']}"
        )
    out.append(f"events ({len(record['events'])}):")
    out += [f"  {event_line(e)}" for e in record["events"]]
    return out


def _beyond_head(record: dict[str, Any]) -> str | None:
    """A warning where the point asked for lies beyond what the ledger holds: the answer is
    then the ledger as it stands now, and the same command later can answer differently."""
    from ledger.entry import parse_timestamp

    head = record.get("head")
    position, known_at = record["as_of_position"], record["known_at"]
    if head is None:
        return None
    if position is not None and position > head:
        return (
            f"note: position {position} lies beyond the ledger's last position, {head}: this "
            "is the ledger as it stands now, and a later run may show more"
        )
    if known_at is not None and parse_timestamp(str(known_at)) > datetime.now(UTC):
        return (
            f"note: {known_at} lies in the future: this is the ledger as it stands now "
            f"(last position {head}), and a later run may show more"
        )
    return None


def _point(position: int | None, known_at: str | None) -> str:
    """`--as-of-position N` / `--known-at TIME`, in words: "position N" or "TIME"."""
    return f"position {position}" if position is not None else str(known_at)


def event_line(e: dict[str, Any]) -> str:
    """One audit-trail item: where, what, when, by whom, and whether it still verifies."""
    verification = e.get("verification", {})
    checked = verification.get("ok")
    mark = "verified" if checked else "NOT VERIFIED" if checked is False else "unchecked"
    if checked is False:
        mark += f" ({', '.join(verification.get('problems', []))})"
    under = f" under {e['policy']}" if e.get("policy") else ""
    return (
        f"{e['position']:>8}  {e['stream_id']} v{e['stream_version']}  {e['type']}  "
        f"on {e['occurred_on']}  recorded {e['recorded_at']}  by {e['actor']}{under}  "
        f"{e['hash'][:16]}  {mark}"
    )


def cmd_replay(args: argparse.Namespace) -> int:
    window_measure(args)  # a setting that does not hold is refused before the store is opened
    app = _app(read_only=True)  # the record is rebuilt in memory
    record = replay(app, args)
    if record is None:
        print(
            f"executive {args.executive} was not registered then "
            f"(at {_point(args.as_of_position, args.known_at)})",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    else:
        print("\n".join(replay_lines(record)))
    # The record above is rebuilt from these events: one that does not verify is a failed
    # check (status 1), as in `audit`, which lists the same entries.
    failed = sum(1 for e in record["events"] if e["verification"]["ok"] is False)
    if failed:
        print(
            f"{failed} of {len(record['events'])} events do not verify: the record above is "
            "rebuilt from them",
            file=sys.stderr,
        )
    return 1 if failed else 0


def cmd_audit(args: argparse.Namespace) -> int:
    from ledger.errors import NotFound
    from projections.queries import ReadModels
    from projections.store import MemoryStore

    if args.actor is None and args.executive is None and args.appraisal is None:
        args.parser.error("name an --actor, an --executive or an --appraisal")
    app = _app(read_only=True)
    # The trail's index, current with the log: the ledger's own tables brought up to date,
    # or, on a ledger that cannot be written, built in memory from the whole log.
    read_models = ReadModels(app, store=MemoryStore() if app.config.opens_read_only else None)
    read_models.catch_up()
    try:
        items = read_models.audit(
            executive_id=args.executive,
            appraisal_id=args.appraisal,
            actor=args.actor,
            position=args.as_of_position,
            known_at=args.known_at,
        )
    except NotFound:  # a record made after the replayed point: nothing matched then
        items = []
    failed = sum(1 for e in items if e["verification"]["ok"] is False)
    if args.json:
        print(json.dumps({"events": items}, indent=2))
    else:
        for e in items:
            print(event_line(e))
    if not items:  # like `replay` of an executive not registered then: nothing matched
        named = [
            f"{label} {value}"
            for label, value in (
                ("actor", args.actor),
                ("executive", args.executive),
                ("appraisal", args.appraisal),
            )
            if value is not None
        ]
        when = (
            ""
            if args.as_of_position is None and args.known_at is None
            else f" at {_point(args.as_of_position, args.known_at)}"
        )
        print(f"0 entries: no entry matches {' and '.join(named)}{when}", file=sys.stderr)
        return 1
    if not args.json:
        verdict = f"{failed} do not verify" if failed else "every one verifies"
        print(f"{len(items)} entries; {verdict}", file=sys.stderr)
    return 1 if failed else 0


# --- bundles ---------------------------------------------------------------------------------


def _no_checkpoint_at(app: Any, size: int) -> str | None:
    """Why `--tree-size size` cannot be used (no checkpoint of that size), naming the sizes
    that were issued, nearest first; None when there is one."""
    from ledger.bundle import merkle_log

    near, total = merkle_log(app).checkpoint_sizes_near(size)
    if size in near:
        return None
    if not near:
        return f"no checkpoint was issued at tree size {size}: none has been issued yet"
    listed = ", ".join(map(str, near))
    if total == 1:
        issued = f"the only checkpoint is at tree size {listed}"
    elif total == len(near):
        issued = f"checkpoints were issued at tree sizes {listed}"
    else:
        issued = f"the nearest of the {total} checkpoints are at tree sizes {listed}"
    return (
        f"no checkpoint was issued at tree size {size}: {issued} (pin one of those, or leave "
        "out --tree-size for the latest)"
    )


def cmd_bundle_export(args: argparse.Namespace) -> int:
    """Write the bundle, checked first as its reader will check it: a ledger whose stored
    entries do not verify (changed by hand, a broken signature) gets no bundle, exit 1."""
    from ledger.bundle import build_bundle, write_bundle
    from ledger.errors import VerificationError

    out = Path(args.out)
    problem = unwritable(out, make_parents=False)
    if problem is not None:  # before a checkpoint is issued for the bundle
        print(f"ses-ledger bundle export: cannot write {out}: {problem}", file=sys.stderr)
        return 2
    # Read-only on an archive: it writes only to issue a checkpoint none yet covers.
    app = _app(read_only=True)
    if args.tree_size is not None:
        problem = _no_checkpoint_at(app, args.tree_size)
        if problem is not None:
            print(f"ses-ledger bundle export: {problem}", file=sys.stderr)
            return 2
    try:
        bundle = build_bundle(
            app, args.executive, tree_size=args.tree_size, consistency_from=args.consistency_from
        )
    except VerificationError as exc:  # a check of the stored evidence failed: status 1
        print(f"ses-ledger bundle export: nothing written to {out}: {exc}", file=sys.stderr)
        return 1
    try:
        write_bundle(bundle, args.out)
    except OSError as exc:
        print(f"ses-ledger bundle export: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {len(bundle['entries'])} entries of {args.executive}, "
        f"checkpoint at tree size {next(iter(bundle['proofs'].values()))['tree_size']}",
        file=sys.stderr,
    )
    return 0


def cmd_bundle_reindex(args: argparse.Namespace) -> int:
    from ledger.bundle import rebuild_subject_index

    print(f"indexed {rebuild_subject_index(_app())} appraisal plans by executive")
    return 0


def _read_note(path: str) -> str:
    """A checkpoint note, from a note file or from a witness state file (its `checkpoint`)."""
    from ledger.offline_verify import read_json, read_text

    text = read_text(path)
    if text.lstrip().startswith("{"):
        return str(read_json(text)[0]["checkpoint"])
    return text


class _NotChecked(Exception):
    """The bundle could not be checked (no verdict on it): exit status 2."""


def cmd_bundle_verify(args: argparse.Namespace) -> int:
    """Delegate to the standalone verifier, after fetching a consistency proof if asked to.

    Exit 2 (not checked) when an input cannot be read, the ledger at --url cannot give a
    usable checkpoint, or the bundle cannot be tied to the trusted checkpoint (the verifier's
    NOT CHECKED); 1 only for evidence against the bundle (as the verifier finds it, or a
    ledger that answers but cannot prove its history extends the bundle's)."""
    from ledger import offline_verify
    from ledger.checkpoint import parse_note

    if args.url is None and (args.checkpoint is None or not _is_state_file(args.checkpoint)):
        argv = [args.file] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
        return offline_verify.main(argv)
    keys: list[dict[str, Any]] | None = None
    positions: dict[str, Any] | None = None
    try:
        bundle, repeated = offline_verify.read_json(offline_verify.read_text(args.file))
        if repeated:  # the copy handed on below is re-encoded: said here, where it is seen
            print(f"PROBLEM: {offline_verify.repeated_names_problem(repeated)}")
            print("NOT VERIFIED: 1 problem(s)")
            return 1
        trusted = _read_note(args.checkpoint) if args.checkpoint else None
        if trusted is not None:
            try:
                offline_verify.note_head(trusted)  # what the verifier reads, said of this file
                parse_note(trusted)
            except ValueError as exc:  # CheckpointError too
                raise ValueError(f"{args.checkpoint} holds no checkpoint note: {exc}") from None
        if args.url is not None:
            trusted = _attach_consistency(bundle, args.url, trusted)
            keys = _ledger_keys(args.url)
            if isinstance(bundle, dict) and bundle.get("position_seal") is None:
                if trusted is None or not trusted.startswith("PROBLEM: "):
                    positions = _ledger_positions(bundle, args.url)
    except (OSError, ValueError, KeyError, TypeError, MemoryError) as exc:
        why = offline_verify.printable(str(exc) or type(exc).__name__)
        print(f"cannot read input, so the bundle was NOT checked: {why}", file=sys.stderr)
        return 2
    except _NotChecked as exc:
        why = offline_verify.printable(str(exc))  # it may quote the server's answer
        print(f"the bundle could NOT be checked (this is no verdict on it): {why}", file=sys.stderr)
        return 2
    if trusted is not None and trusted.startswith("PROBLEM: "):
        print(f"{offline_verify.printable(trusted)}\nNOT VERIFIED: 1 problem(s)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp) / "bundle.json"
        bundle_path.write_text(json.dumps(bundle), encoding="utf-8")
        argv = [str(bundle_path)]
        if trusted is not None:
            note_path = Path(tmp) / "trusted.note"
            note_path.write_text(trusted, encoding="utf-8")
            argv += ["--checkpoint", str(note_path)]
        if keys is not None:
            keys_path = Path(tmp) / "keys.json"
            keys_path.write_text(json.dumps({"keys": keys}), encoding="utf-8")
            argv += ["--keys", str(keys_path)]
        if positions is not None:
            positions_path = Path(tmp) / "positions.json"
            positions_path.write_text(json.dumps({"proofs": positions}), encoding="utf-8")
            argv += ["--positions", str(positions_path)]
        return offline_verify.main(argv)


def _ledger_keys(url: str) -> list[dict[str, Any]]:
    """The keys the ledger at `url` lists: its checkpoint is signed with the key current now,
    which an older bundle does not hold, and each bundle key must be one of them."""
    from ledger.witness import Inconsistent, LogClient, WitnessUnavailable

    try:  # with their validity: each entry's recorded_at is held to its key's window
        return LogClient(url).key_list()
    except (Inconsistent, WitnessUnavailable) as exc:
        raise _NotChecked(f"cannot obtain the ledger's keys from {url}: {exc}") from None


def _ledger_positions(bundle: dict[str, Any], url: str) -> dict[str, Any] | None:
    """The ledger's inclusion proof of each entry's position at the bundle's tree size
    (`GET /v1/ledger/proofs/inclusion`, one request per entry), for a bundle without a
    `position_seal`: a position is not hashed, and the ledger, reached at `url`, proves which
    leaf lies there (`offline_verify --positions`). {position: proof, or None where the
    ledger holds no event of that tree there}; None when the bundle's checkpoint cannot be
    read (the verifier reports it). Raises _NotChecked when the ledger cannot answer.

    A sealed bundle asks nothing more: its seal is the ledger's signature over the same
    [position, leaf index] pairs, by a key that --url already holds to the ledger's key list,
    so a request per entry would prove again what one signature proves."""
    from api.schemas.common import MAX_POSITION
    from ledger.checkpoint import CheckpointError, parse_note
    from ledger.witness import Inconsistent, LogClient, WitnessUnavailable

    try:
        size = parse_note(str(bundle.get("checkpoint")))[0].size
    except (CheckpointError, AttributeError):
        return None
    entries = bundle.get("entries")
    wanted = sorted(
        {
            e["position"]
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, dict)
            and isinstance(e.get("position"), int)
            and not isinstance(e.get("position"), bool)
            and e["position"] >= 0
        }
    )
    client = LogClient(url)
    answers: dict[str, Any] = {}
    for position in wanted:
        if position > MAX_POSITION:  # beyond any position the ledger gives
            answers[str(position)] = None
            continue
        try:
            answers[str(position)] = client.inclusion(position, size)
        except (Inconsistent, WitnessUnavailable) as exc:
            raise _NotChecked(
                f"cannot obtain the ledger's inclusion proof of position {position} at tree "
                f"size {size}, which proves the position of an entry of a bundle without a "
                f"position_seal: {exc}"
            ) from None
    return answers


def _is_state_file(path: str) -> bool:
    from ledger.offline_verify import TEXT

    try:
        with open(path, encoding=TEXT) as f:
            return f.read(64).lstrip().startswith("{")
    except (OSError, ValueError):
        return False


def _attach_consistency(bundle: Any, url: str, trusted: str | None) -> str | None:
    """Add the server's consistency proof between the bundle's checkpoint and `trusted` (a
    parsed note; the server's current checkpoint when None). Returns the trusted note (None:
    the bundle has no usable checkpoint, which the verifier reports), or `PROBLEM: ...` when
    the server cannot prove that one tree extends the other. Raises _NotChecked when the
    server cannot be reached or gives no usable checkpoint."""
    from ledger.checkpoint import CheckpointError, parse_note
    from ledger.witness import Inconsistent, LogClient, WitnessUnavailable

    client = LogClient(url)
    if trusted is not None:
        theirs = parse_note(trusted)[0].size  # checked by the caller
    try:
        ours = parse_note(str(bundle.get("checkpoint")))[0].size
    except (CheckpointError, AttributeError):
        return trusted  # the verifier reports the bundle's checkpoint as a problem
    note = trusted
    if note is None:
        try:
            note = client.checkpoint()
            theirs = parse_note(note)[0].size
        except (CheckpointError, Inconsistent, WitnessUnavailable) as exc:
            raise _NotChecked(f"cannot obtain a usable checkpoint from {url}: {exc}") from None
    if ours != theirs and min(ours, theirs) > 0:
        first, second = sorted((ours, theirs))
        try:
            hashes = client.consistency(first, second)
        except WitnessUnavailable as exc:
            raise _NotChecked(
                f"cannot obtain the consistency proof {first} -> {second}: {exc}"
            ) from None
        except Inconsistent as exc:
            return (
                f"PROBLEM: the ledger at {url} cannot prove that tree size {second} extends "
                f"{first} ({exc}): history was cut or rewritten"
            )
        proofs = list(bundle.get("consistency_proofs") or [])
        proofs.append(
            {
                "first": first,
                "second": second,
                "hashes": [base64.b64encode(h).decode() for h in hashes],
            }
        )
        bundle["consistency_proofs"] = proofs
    return note


# --- witness and checkpoint ------------------------------------------------------------------


def cmd_witness(args: argparse.Namespace) -> int:
    from ledger.offline_verify import printable
    from ledger.witness import WitnessUnavailable, http_fetch, witness

    state = Path(args.state)
    problem = unwritable(state, make_parents=True)
    if problem is not None:
        print(f"ses-ledger witness: cannot keep the state in {state}: {problem}", file=sys.stderr)
        return 2
    try:
        seen = witness(args.url, state, origin=args.origin, fetch=http_fetch(args.timeout))
    except WitnessUnavailable as exc:
        print(f"ses-ledger witness: {printable(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the state's lock or the state itself, written after the check
        print(f"ses-ledger witness: cannot keep the state in {state}: {exc}", file=sys.stderr)
        return 2
    for line in seen.lines:  # they quote what the server answered: shown, never acted on
        print(printable(line))
    return 0 if seen.ok else 1


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from ledger.bundle import merkle_log
    from ledger.checkpoint import Checkpoint, sign_checkpoint
    from ledger.merkle import EMPTY_ROOT

    if args.out:
        problem = unwritable(Path(args.out), make_parents=True)
        if problem is not None:  # before a checkpoint is signed and stored
            print(f"ses-ledger checkpoint: cannot write {args.out}: {problem}", file=sys.stderr)
            return 2
    app = _app()
    origin = app.config.origin
    log = merkle_log(app)
    stored = log.issue_checkpoint(lambda: app.signer, origin)
    if stored is None:  # an empty ledger: a note for the empty tree, not stored
        note = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), origin, app.signer.private_key)
    else:
        note = stored.note
    if args.out:
        from ledger.witness import write_atomically

        try:
            write_atomically(Path(args.out), note)
        except OSError as exc:
            write_exact(note)
            print(
                f"ses-ledger checkpoint: the checkpoint above was issued, but cannot be written "
                f"to {args.out}: {exc}",
                file=sys.stderr,
            )
            return 2
    write_exact(note)
    return 0


# --- registration ----------------------------------------------------------------------------


def _add_point(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """`--as-of-position N | --known-at TIME`: the ledger as it stood then."""
    when = parser.add_mutually_exclusive_group(required=required)
    when.add_argument(
        "--as-of-position", type=_position, metavar="N", help="only events at positions <= N"
    )
    when.add_argument(
        "--known-at",
        type=_timestamp,
        metavar="TIME",
        help="only events recorded at or before TIME (RFC 3339, e.g. 2025-01-01T00:00:00Z)",
    )


def register(sub: Any) -> None:
    rp = sub.add_parser(
        "replay",
        help="an executive's record as the ledger stood at a position or time",
        description=(
            "Rebuilds the executive's appraisals, final ratings and removal history from the "
            "events the ledger held then (positions <= N, or recorded at or before TIME) and "
            "lists those events with their verification. Exit status 1 when the executive "
            "was not registered then, or when one of those events does not verify. "
            "REM-2/REM-3 are judged by SES_LEDGER_WINDOW_MEASURE (rating-date, the default, "
            "or appraisal-cycle), as the server judges them."
        ),
    )
    rp.add_argument("--executive", required=True, type=_ident, metavar="ID", help="their id")
    _add_point(rp, required=True)
    rp.add_argument(
        "--as-of",
        type=_day,
        metavar="DATE",
        help="removal-history date (default: the day the ledger stood at)",
    )
    rp.add_argument(
        "--window-measure",
        choices=("rating-date", "appraisal-cycle"),
        help="how REM-2/REM-3 'within 3/5 years' is measured (default: "
        f"{WINDOW_MEASURE_VARIABLE}, as the API server uses it, else rating-date)",
    )
    rp.add_argument("--json", action="store_true", help="print JSON instead of text")
    rp.set_defaults(handler=cmd_replay)

    audit = sub.add_parser(
        "audit",
        help="who did what, when, under which policy: an actor's, executive's or appraisal's "
        "ledger entries, each verified",
        description=(
            "Lists the ledger entries of an acting official, of an executive's record (their "
            "own stream and their appraisals) or of an appraisal (given together: the entries "
            "matching all), in global order, each with its hash, signature and chain link "
            "checked now. Exit status 1 when any entry does not verify, or when there is none "
            "(an unknown id, or nothing recorded by then), as `replay` of an executive not "
            "registered then."
        ),
    )
    audit.add_argument(
        "--actor",
        type=_actor,
        metavar="ID",
        help="the acting official, matched exactly (one recorded with a trailing line feed by "
        "a server before 2026-12-01 is given with it: --actor $'hr-1\\n')",
    )
    audit.add_argument(
        "--executive", type=_ident, metavar="ID", help="their record and their appraisals"
    )
    audit.add_argument("--appraisal", type=_ident, metavar="ID", help="one appraisal")
    _add_point(audit, required=False)
    audit.add_argument("--json", action="store_true", help="print JSON instead of text")
    audit.set_defaults(handler=cmd_audit, parser=audit)

    bundle = sub.add_parser("bundle", help="export or verify an offline evidence bundle")
    bsub = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    export = bsub.add_parser(
        "export",
        help="write an executive's evidence bundle (ses-ledger-bundle/v1)",
        description="Every event of the executive's streams with inclusion proofs against "
        "a signed checkpoint (issued now if the latest does not cover them), checked as "
        "`bundle verify` will check it before it is written (each entry's hash, signature, "
        "chain link and inclusion proof, the checkpoint's signature). Exit status 0 written; "
        "1 the ledger's stored entries do not verify (a stored event changed by hand, a "
        "broken signature): the positions are named and no file is written (an earlier file "
        "of that name is left as it was); 2 a refused command (an executive the ledger does "
        "not hold, no such checkpoint, a path that cannot be written).",
    )
    export.add_argument("--executive", required=True, type=_ident, metavar="ID", help="their id")
    export.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the bundle's JSON file (replaced if it exists)",
    )
    export.add_argument(
        "--tree-size", type=_tree_size, metavar="N", help="pin an earlier checkpoint of this size"
    )
    export.add_argument(
        "--consistency-from",
        type=_position,
        metavar="N",
        help="also include the consistency proof from tree size N (a checkpoint you trust)",
    )
    export.set_defaults(handler=cmd_bundle_export)
    verify = bsub.add_parser(
        "verify",
        help="verify a bundle offline (ledger/offline_verify.py)",
        description="Exit 0 verified, 1 problems found, 2 could not check (unreadable input: "
        "also a file of more than 1 GiB, or one with a NUL byte or bytes that are not UTF-8; "
        "the ledger at --url unreachable or without a usable checkpoint, or a bundle that "
        "cannot be tied to the trusted --checkpoint: no consistency proof between them, a "
        "newer note signed by a key the bundle cannot list, or, without --url, a bundle "
        "checkpoint signed by another key than the trusted one, as after `keys rotate`; NOT "
        "CHECKED lines). With --url, the consistency proof between the bundle's checkpoint and "
        "the trusted one (or the server's latest) is fetched from the ledger first, and the "
        "bundle's keys are checked against the keys the ledger lists: an old bundle then "
        "detects a rewrite or truncation of the history it was exported from. A bundle "
        "without a position_seal has each entry's position checked with --url against the "
        "ledger's inclusion proof of that position (one request per entry): another leaf "
        "there, or none, is a problem (1); a ledger that cannot answer, 2. A bundle "
        "proves that its entries are the ledger's, not that it holds all of the executive's "
        "events: one left out by the exporter (a whole appraisal, or the last events of a "
        "stream) goes undetected; one removed from the bundle after export fails against its "
        "position_seal.",
    )
    verify.add_argument("file", metavar="FILE", help="the bundle's JSON file")
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a trusted checkpoint note (or a witness state file)",
    )
    verify.add_argument("--url", type=_url, metavar="URL", help="ledger API base URL for the proof")
    verify.set_defaults(handler=cmd_bundle_verify)

    bsub.add_parser(
        "reindex",
        help="rebuild the executive -> appraisals index bundles use, from the events",
        description="Recreates the index bundles use to find an executive's appraisals, from "
        "the events alone: after a restore, or when a bundle seems to miss an appraisal.",
    ).set_defaults(handler=cmd_bundle_reindex)

    wp = sub.add_parser(
        "witness",
        help="check the ledger's checkpoint against the last one seen (fork, rewrite, cut)",
        description="Exit 0 consistent (or first use), 1 inconsistent, 2 could not check.",
    )
    wp.add_argument("--url", required=True, type=_url, metavar="URL", help="ledger API base URL")
    wp.add_argument(
        "--state",
        required=True,
        metavar="FILE",
        help="the witness's state file (made at first use, with missing directories)",
    )
    wp.add_argument("--origin", help="expected checkpoint origin (default: as first seen)")
    wp.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds per request (default 10)",
    )
    wp.set_defaults(handler=cmd_witness)

    cp = sub.add_parser("checkpoint", help="sign a checkpoint of the current tree and print it")
    cp.add_argument(
        "--out",
        metavar="FILE",
        help="also write the note to FILE (replaced if it exists; missing directories are made)",
    )
    cp.set_defaults(handler=cmd_checkpoint)
