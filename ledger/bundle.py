"""Evidence bundles: one executive's whole record, verifiable offline (api-contract.md, Reads).

A bundle holds every event of the executive's streams (the executive stream, every appraisal
whose `PlanSet` names the executive, and the review boards its PRB recommendations cite),
whole streams from version 1 and sorted by position, with the ledger's public keys, one signed
checkpoint and an RFC 9162 inclusion proof of each event against that checkpoint. That is
exactly what `ledger/offline_verify.py` checks, so a bundle verifies with no access to the
ledger.

Finding an executive's appraisals: stream ids are chosen by clients, and the event table has
no index on the event type, so a scan of every `PlanSet` costs a full table scan (seconds at a
million events). The ledger layer may not read the projections, so this module keeps a small
derived index, `ledger_subject_streams(executive_id, stream_id)`, and a high-water mark, caught
up on each use by scanning only the events appended since (`select_notifications` from the
mark). The index is a cache, never evidence: every stream it names is re-read from the event
table and its `PlanSet` re-checked, and `rebuild_subject_index` recreates it from the events.
What it cannot prove is completeness (an index row deleted by someone with database access
hides an appraisal); neither can any bundle, which proves inclusion, not absence.
"""

from __future__ import annotations

import base64
import json
import re
import weakref
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.entry import entry_from_state, split_state
from ledger.errors import (
    BundleDoesNotVerify,
    NotFound,
    SigningKeyError,
    UnreadableEntry,
    VerificationError,
)
from ledger.files import write_output
from ledger.log import MerkleLog, ProofUnavailable, StoredCheckpoint
from ledger.merkle import inclusion_proof, node_key

FORMAT = "ses-ledger-bundle/v1"
_PAGE = 5000
_CHUNK = 500


@dataclass(frozen=True)
class _EventsTable:
    """Where eventsourcing keeps the events, and the column that is the global position."""

    name: str
    id_column: str
    p: str


def _events_table(recorder: Any) -> _EventsTable:
    tables = recorder.tables
    if tables.dialect == "sqlite":
        return _EventsTable(recorder.events_table_name, "rowid", tables.p)
    schema = recorder.datastore.schema
    return _EventsTable(f'"{schema}"."{recorder.events_table_name}"', "notification_id", tables.p)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def stream_entries(
    recorder: Any,
    stream_ids: Iterable[str],
    *,
    max_position: int | None = None,
    after: int | None = None,
) -> list[dict[str, Any]]:
    """Every stored event of the given streams as contract entries, sorted by position
    (only those at positions in (`after`, `max_position`] when given).

    The library's `select_events` leaves the global position out, so this reads the event
    table by its primary key (originator_id, originator_version).
    """
    return [entry for _stream, entry in _stream_rows(recorder, stream_ids, max_position, after)]


def _stream_rows(
    recorder: Any, stream_ids: Iterable[str], max_position: int | None, after: int | None
) -> list[tuple[str, dict[str, Any]]]:
    """`stream_entries`, each with the stream it is stored under."""
    table = _events_table(recorder)
    wanted = sorted(set(stream_ids))
    rows: list[tuple[int, str, bytes]] = []
    with recorder.datastore.transaction(commit=False) as cursor:
        for chunk in _chunks(wanted):
            marks = ",".join([table.p] * len(chunk))
            sql = (
                f"SELECT {table.id_column} AS id, originator_id AS stream_id, state AS state "
                f"FROM {table.name} WHERE originator_id IN ({marks})"
            )
            params: list[Any] = list(chunk)
            if max_position is not None:
                sql += f" AND {table.id_column} <= {table.p}"
                params.append(max_position)
            if after is not None:
                sql += f" AND {table.id_column} > {table.p}"
                params.append(after)
            cursor.execute(sql, params)
            rows.extend(
                (int(r["id"]), str(r["stream_id"]), bytes(r["state"])) for r in cursor.fetchall()
            )
    rows.sort()
    entries = []
    for position, stream_id, state in rows:
        try:
            entries.append((stream_id, entry_from_state(state, position)))
        except UnreadableEntry as exc:  # cut short or rewritten by hand: say where
            raise UnreadableEntry(exc.message, position) from exc
    return entries


class StreamCache:
    """Streams' entries up to position `upto` read once and kept, the later ones read on
    each call: the evidence endpoint reads an executive's record (which has no limit)
    outside the write gate, then, under the gate, only what was appended since."""

    def __init__(self, recorder: Any, upto: int) -> None:
        self.recorder = recorder
        self.upto = upto
        self.held: dict[str, list[dict[str, Any]]] = {}

    def entries(
        self, stream_ids: Iterable[str], *, max_position: int | None = None
    ) -> list[dict[str, Any]]:
        """What `stream_entries` reads now."""
        wanted = sorted(set(stream_ids))
        new = [s for s in wanted if s not in self.held]
        if new:
            for stream_id in new:
                self.held[stream_id] = []
            for stream_id, entry in _stream_rows(self.recorder, new, self.upto, None):
                self.held[stream_id].append(entry)
        found = [
            e
            for s in wanted
            for e in self.held[s]
            if max_position is None or int(e["position"]) <= max_position
        ]
        if max_position is None or max_position > self.upto:
            found += stream_entries(
                self.recorder, wanted, max_position=max_position, after=self.upto
            )
        found.sort(key=lambda e: int(e["position"]))
        return found


# --- the executive -> appraisal streams index -------------------------------------------------


class SubjectIndex:
    """Which appraisal streams concern which executive, read from their `PlanSet` events.

    Safe across processes: inserts ignore rows already present and the mark only moves
    forward, so two catch-ups racing each other write the same rows.
    """

    def __init__(self, recorder: Any, *, read_only: bool = False) -> None:
        self.recorder = recorder
        #: The store cannot be written (an archived ledger opened read-only): the index is
        #: neither made nor kept, and `streams` reads the `PlanSet` events instead.
        self.read_only = read_only
        tables = recorder.tables
        self.p = p = tables.p
        self.sqlite = tables.dialect == "sqlite"
        prefix = "" if self.sqlite else f'"{recorder.datastore.schema}".'
        self.rows = f"{prefix}ledger_subject_streams"
        self.mark = f"{prefix}ledger_subject_mark"
        ignore, tail = ("OR IGNORE ", "") if self.sqlite else ("", " ON CONFLICT DO NOTHING")
        self._insert = (
            f"INSERT {ignore}INTO {self.rows} (executive_id, stream_id, position) "
            f"VALUES ({p},{p},{p}){tail}"
        )
        self._ready = False

    def _create(self, gate: AbstractContextManager[object] | None = None) -> None:
        big = "INTEGER" if self.sqlite else "BIGINT"
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.rows} (executive_id TEXT NOT NULL, "
            f"stream_id TEXT NOT NULL, position {big} NOT NULL, "
            "PRIMARY KEY (executive_id, stream_id))",
            f"CREATE TABLE IF NOT EXISTS {self.mark} (id INTEGER PRIMARY KEY, "
            f"position {big} NOT NULL)",
        ]
        for attempt in range(2):
            try:
                with gate or nullcontext(), self.recorder.datastore.transaction(commit=True) as c:
                    for sql in statements:
                        c.execute(sql)
                break
            except Exception:  # PostgreSQL: two creators raced on the catalogue; retry once
                if attempt:
                    raise
        self._ready = True

    def _read_mark(self, cursor: Any) -> int:
        cursor.execute(f"SELECT position AS n FROM {self.mark} WHERE id = 1")
        row = cursor.fetchone()
        return 0 if row is None else int(row["n"])

    def _advance_mark(self, cursor: Any, position: int) -> None:
        """Move the mark forward to `position` (never back, whoever wrote it last)."""
        larger = "MAX" if self.sqlite else "GREATEST"
        cursor.execute(
            f"INSERT INTO {self.mark} AS m (id, position) VALUES (1, {self.p}) "
            f"ON CONFLICT (id) DO UPDATE SET position = {larger}(m.position, excluded.position)",
            (position,),
        )

    def catch_up(self, gate: AbstractContextManager[object] | None = None) -> int:
        """Index the `PlanSet` events appended since the last call; returns how many.

        `gate`: taken for each write (the server's write gate), not while the events are
        read; two catch-ups at once write the same rows (see the class)."""
        writing = gate or nullcontext()
        if not self._ready:
            self._create(gate)
        head = int(self.recorder.max_notification_id() or 0)
        with self.recorder.datastore.transaction(commit=False) as cursor:
            mark = self._read_mark(cursor)
        if mark > head:  # the log shrank and positions may be reused: start again
            with writing, self.recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(f"DELETE FROM {self.mark}")
            mark = 0
        added = 0
        while mark < head:
            page = self.recorder.select_notifications(
                start=mark + 1, limit=_PAGE, stop=head, topics=["PlanSet"]
            )
            rows = [(_plan_subject(n.state), str(n.originator_id), int(n.id)) for n in page]
            mark = int(page[-1].id) if len(page) == _PAGE else head
            with writing, self.recorder.datastore.transaction(commit=True) as cursor:
                if rows:
                    cursor.executemany(self._insert, rows)
                self._advance_mark(cursor, mark)
            added += len(rows)
        return added

    def streams(
        self, executive_id: str, gate: AbstractContextManager[object] | None = None
    ) -> list[str]:
        """The appraisal stream ids whose `PlanSet` names `executive_id`, oldest first."""
        if self.read_only:
            return self._scan(executive_id)
        self.catch_up(gate)
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT stream_id AS s FROM {self.rows} WHERE executive_id = {self.p} "
                "ORDER BY position",
                (executive_id,),
            )
            return [str(r["s"]) for r in cursor.fetchall()]

    def _scan(self, executive_id: str) -> list[str]:
        """`streams` without the index: every `PlanSet` read, as `catch_up` reads them (a
        stream listed once, at its first plan, as the index's primary key keeps it)."""
        head = int(self.recorder.max_notification_id() or 0)
        found: dict[str, None] = {}
        mark = 0
        while mark < head:
            page = self.recorder.select_notifications(
                start=mark + 1, limit=_PAGE, stop=head, topics=["PlanSet"]
            )
            for n in page:
                if _plan_subject(n.state) == executive_id:
                    found.setdefault(str(n.originator_id))
            mark = int(page[-1].id) if len(page) == _PAGE else head
        return list(found)

    def rebuild(self) -> int:
        """Forget the index and read every `PlanSet` again; returns how many were indexed."""
        if not self._ready:
            self._create()
        with self.recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {self.rows}")
            cursor.execute(f"DELETE FROM {self.mark}")
        return self.catch_up()


def _plan_subject(state: bytes) -> str:
    body, _ = split_state(state)
    data = json.loads(body).get("data") or {}
    return str(data.get("executive_id", ""))


_INDEXES: weakref.WeakKeyDictionary[Any, SubjectIndex] = weakref.WeakKeyDictionary()


def subject_index(app: Any) -> SubjectIndex:
    """The index of `app`, made once per application object (it remembers its table is made)."""
    index = _INDEXES.get(app)
    if index is None:
        read_only = bool(app.config.opens_read_only)
        index = _INDEXES[app] = SubjectIndex(app.recorder, read_only=read_only)
    return index


def rebuild_subject_index(app: Any) -> int:
    """Recreate the index from the events (after a restore, or if it is suspected)."""
    return subject_index(app).rebuild()


def executive_entries(
    app: Any,
    executive_id: str,
    *,
    max_position: int | None = None,
    known_at: str | None = None,
    include_boards: bool = True,
    streams: StreamCache | None = None,
    gate: AbstractContextManager[object] | None = None,
) -> list[dict[str, Any]]:
    """The executive's stream, their appraisal streams and (optionally) the cited boards.

    Whole streams up to `max_position` (and, with `known_at`, in the ledger's `recorded_at`
    form, only entries recorded by then), sorted by position. Raises NotFound when the
    executive was never registered (as of that bound). `streams`: read through it (what it
    holds already is not read again); `gate`: taken by the subject index's writes.
    """
    recorder = app.recorder

    def read(ids: Iterable[str]) -> list[dict[str, Any]]:
        if streams is not None:
            return streams.entries(ids, max_position=max_position)
        return stream_entries(recorder, ids, max_position=max_position)

    def bounded(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if known_at is None:
            return found
        return [e for e in found if e["recorded_at"] <= known_at]

    appraisals = subject_index(app).streams(executive_id, gate)
    entries = bounded(read([executive_id, *appraisals]))
    first = {e["stream_id"]: e for e in reversed(entries)}
    head = first.get(executive_id)
    if head is None or head["type"] != "ExecutiveRegistered":
        raise NotFound("executive", executive_id)
    for stream_id in appraisals:
        plan = first.get(stream_id)
        if plan is not None and (
            plan["type"] != "PlanSet" or plan["data"].get("executive_id") != executive_id
        ):
            raise VerificationError(
                f"the subject index names {stream_id} for {executive_id}, but its first event "
                "does not: run `ses-ledger bundle reindex` and `ses-ledger verify`",
                plan["position"],
            )
    if include_boards:
        boards = sorted(
            {
                str(e["data"]["board_id"])
                for e in entries
                if e["type"] == "PRBRecommended" and e["data"].get("board_id")
            }
            - set(first)
        )
        if boards:
            entries += bounded(read(boards))
            entries.sort(key=lambda e: int(e["position"]))
    return entries


# --- proofs -----------------------------------------------------------------------------------


def _leaf_indices(recorder: Any, positions: Sequence[int]) -> dict[int, int]:
    t = recorder.tables
    found: dict[int, int] = {}
    with recorder.datastore.transaction(commit=False) as cursor:
        for chunk in _chunks(sorted(set(positions))):
            marks = ",".join([t.p] * len(chunk))
            cursor.execute(
                f"SELECT position AS p, leaf_index AS i FROM {t.leaves} "
                f"WHERE position IN ({marks})",
                list(chunk),
            )
            found.update((int(r["p"]), int(r["i"])) for r in cursor.fetchall())
    return found


def inclusion_proofs(
    recorder: Any, leaves: dict[int, int], tree_size: int
) -> dict[str, dict[str, Any]]:
    """Inclusion proofs of many leaves ({position: leaf_index}) in one read transaction.

    Neighbouring leaves share most of their paths, so each stored node is read once.
    """
    t = recorder.tables
    nodes: dict[tuple[int, int], bytes] = {}
    proofs: dict[str, dict[str, Any]] = {}
    with recorder.datastore.transaction(commit=False) as cursor:

        def get(start: int, end: int) -> bytes:
            key = node_key(start, end)
            found = nodes.get(key)
            if found is None:
                level, idx = key
                if level == 0:
                    cursor.execute(t.get_leaf, (idx,))
                else:
                    cursor.execute(t.get_node, (level, idx))
                row = cursor.fetchone()
                if row is None:
                    raise ProofUnavailable(f"the Merkle node ({level}, {idx}) is not stored")
                found = nodes[key] = bytes(row["h"])
            return found

        for position, index in sorted(leaves.items()):
            hashes = inclusion_proof(index, tree_size, get)
            proofs[str(position)] = {
                "leaf_index": index,
                "tree_size": tree_size,
                "hashes": [base64.b64encode(h).decode() for h in hashes],
            }
    return proofs


def merkle_log(app: Any) -> MerkleLog:
    """The application's Merkle log (it caches the tree's frontier), or a new reader."""
    log = getattr(app, "merkle_log", None)
    return log if isinstance(log, MerkleLog) else MerkleLog(app.recorder)


def _position_of_leaf(recorder: Any, index: int) -> int:
    t = recorder.tables
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT position AS p FROM {t.leaves} WHERE leaf_index = {t.p}", (index,))
        row = cursor.fetchone()
    if row is None:
        raise ProofUnavailable(f"the Merkle log has no leaf {index}")
    return int(row["p"])


def _checkpoint(app: Any, log: MerkleLog, needed: int, tree_size: int | None) -> StoredCheckpoint:
    """The pinned checkpoint, or the latest one, issued now if it does not cover `needed`."""
    if tree_size is not None:
        found = log.checkpoint_at_least(tree_size)
        if found is None or found.tree_size != tree_size:
            latest = log.latest_checkpoint()
            raise ProofUnavailable(
                f"no checkpoint was issued at tree size {tree_size}"
                + (f" (the latest is at {latest.tree_size})" if latest else "")
            )
        return found
    latest = log.latest_checkpoint()
    if (latest is None or latest.tree_size < needed) and app.config.opens_read_only:
        issued = f"the latest is at tree size {latest.tree_size}" if latest else "none was"
        raise ProofUnavailable(
            f"no checkpoint covers {needed} leaves ({issued}), and this ledger cannot be "
            "written to store a new one: `--tree-size` pins an issued checkpoint"
        )
    if latest is None or latest.tree_size < needed:
        latest = log.issue_checkpoint(lambda: app.signer, app.config.origin)
    if latest is None or latest.tree_size < needed:
        raise ProofUnavailable(f"no checkpoint covers {needed} leaves")
    return latest


def build_bundle(
    app: Any,
    executive_id: str,
    *,
    tree_size: int | None = None,
    consistency_from: int | None = None,
    as_of_position: int | None = None,
    known_at: str | None = None,
    check: bool = True,
    gate: AbstractContextManager[object] | None = None,
) -> dict[str, Any]:
    """The executive's evidence bundle (api-contract.md "evidence-bundle"), JSON-ready.

    Checked as its reader will check it (`check_bundle`) unless `check` is False, for a
    caller that checks it itself, later (the API, outside its write gate).

    `as_of_position` / `known_at` (api-contract.md: reads of executives accept them): the
    record as the ledger stood then, i.e. only the entries at positions <= N, or recorded at
    or before `known_at` (the ledger's `recorded_at` form), proved against a checkpoint that
    covers them, as any bundle is.

    `tree_size` pins a checkpoint issued earlier: the bundle then shows the record as it stood
    at that checkpoint. Otherwise the latest checkpoint is used, and a new one issued first if
    it does not cover every entry. `consistency_from` (a smaller or larger tree size) adds the
    RFC 9162 consistency proof between it and the bundle's checkpoint as `consistency`, which
    the offline verifier uses with `--checkpoint` (a field the contract allows adding).
    Raises NotFound (unknown executive), ProofUnavailable (no such checkpoint or proof) or
    VerificationError (an event without its Merkle leaf, a checkpoint the log disagrees
    with, or BundleDoesNotVerify: run `ses-ledger verify`).

    `gate` (the server's write gate; None: none is taken): held while the record is
    completed, the Merkle log integrated and the checkpoint chosen (or issued), so that the
    bundle is the record as it stood then, with every entry of it that the checkpoint
    covers, as when the whole build held it. What does not change is read outside it: the
    record up to the head read before (entries at positions below the head are committed,
    and positions are handed out in commit order; under the gate only the entries appended
    since are read), and the proofs after (the nodes of an issued checkpoint's tree). An
    executive's record has no limit (APP-1): at 20,000 complaints the whole build held the
    gate for about 1 s, and every write waited for it.
    """
    log = merkle_log(app)
    max_position = None
    if tree_size is not None:
        _checkpoint(app, log, tree_size, tree_size)
        max_position = _position_of_leaf(app.recorder, tree_size - 1)
    if as_of_position is not None:
        max_position = as_of_position if max_position is None else min(max_position, as_of_position)
    streams: StreamCache | None = None
    leaves: dict[int, int] = {}
    # (A read-only ledger is read in one go: its subject index is a scan of every plan.)
    if gate is not None and not app.config.opens_read_only:
        head = int(app.recorder.max_notification_id() or 0)
        upto = head if max_position is None else min(head, max_position)
        streams = StreamCache(app.recorder, upto)
        try:
            early = executive_entries(
                app, executive_id, max_position=upto, known_at=known_at, streams=streams, gate=gate
            )
        except (NotFound, VerificationError):
            early = []  # said below, of the record as it stands under the gate
        leaves = _leaf_indices(app.recorder, [e["position"] for e in early])
    with gate or nullcontext():
        entries = executive_entries(
            app, executive_id, max_position=max_position, known_at=known_at, streams=streams
        )
        positions = [e["position"] for e in entries]
        leaves.update(_leaf_indices(app.recorder, [p for p in positions if p not in leaves]))
        leaves = {p: leaves[p] for p in positions if p in leaves}
        if len(leaves) < len(positions) and app.config.opens_read_only:
            raise ProofUnavailable(
                "some of the entries are not yet in the Merkle log, and this ledger cannot be "
                "written to add them: `--tree-size` pins an issued checkpoint"
            )
        if len(leaves) < len(positions):  # committed but not yet integrated into the tree
            log.integrate()
            leaves = _leaf_indices(app.recorder, positions)
        missing = [p for p in positions if p not in leaves]
        if missing:
            raise VerificationError("the event is not in the Merkle log", missing[0])
        needed = max(leaves[e["position"]] for e in entries) + 1
        checkpoint = _checkpoint(app, log, needed, tree_size)
    if log.root(checkpoint.tree_size) != checkpoint.root:
        raise VerificationError(
            f"the checkpoint at tree size {checkpoint.tree_size} does not match the Merkle log"
        )
    chosen = {e["position"]: leaves[e["position"]] for e in entries}
    # Sealed before the keys are listed: a rotation between the two sealed the positions
    # with a key the bundle did not list, and the bundle failed its check ("is not among
    # the bundle's keys"). Keys are never taken off the list, so every key that signed an
    # entry, the checkpoint or the seal is on it.
    seal = position_seal(app, checkpoint.note, chosen)
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "executive_id": executive_id,
        "entries": entries,
        "keys": [k.as_json() for k in app.keyring.public_keys()],
        "checkpoint": checkpoint.note,
        "proofs": inclusion_proofs(app.recorder, chosen, checkpoint.tree_size),
        "position_seal": seal,
    }
    if consistency_from is not None and consistency_from != checkpoint.tree_size:
        first, second = sorted((consistency_from, checkpoint.tree_size))
        bundle["consistency"] = log.consistency(first, second)
    if check:
        check_bundle(app, bundle)
    return bundle


def position_seal(app: Any, note: str, leaves: dict[int, int]) -> dict[str, Any] | None:
    """The ledger's signature over each entry's position and leaf index in the checkpoint's
    tree (`offline_verify.position_seal_message`): a position is not hashed, so without it an
    entry's position could be edited in the bundle, its proof moved along. None where the
    signing key cannot be loaded (an archive copied without its private keys): the bundle
    then holds null, and the verifier says its positions are unproven."""
    from ledger.checkpoint import parse_note
    from ledger.offline_verify import position_seal_message

    try:
        signer = app.signer
    except SigningKeyError:
        return None
    cp = parse_note(note)[0]
    pairs = [[position, index] for position, index in sorted(leaves.items())]
    message = position_seal_message((cp.origin, cp.size, cp.root_hash), pairs)
    return {
        "key_id": signer.key_id,
        "positions": pairs,
        "signature": base64.b64encode(signer.sign(message)).decode(),
    }


#: Where a problem of the offline verifier names an entry ("position N: ...").
_AT_POSITION = re.compile(r"position (-?\d+): ")


def check_bundle(app: Any, bundle: dict[str, Any]) -> None:
    """Refuse to hand out a bundle that does not verify: BundleDoesNotVerify naming where.

    The bundle is checked as its reader will check it, by `ledger/offline_verify.py` (each
    entry's hash, signature, stream chain and inclusion proof against the signed checkpoint,
    the key validity windows), with the ledger's own key list as the trusted one. A stored
    event whose bytes were changed (an SQL UPDATE of its state, a broken signature) would
    otherwise leave as evidence that fails in the reader's hands, or be taken for the
    exporter's fault; `ses-ledger verify` names the first bad position in the whole ledger.
    """
    from ledger.offline_verify import verify_bundle

    keys = [k.as_json() for k in app.keyring.public_keys()]
    report = verify_bundle(json.loads(json.dumps(bundle)), trusted_keys=keys)
    if report.problems:
        raise BundleDoesNotVerify(
            str(bundle.get("executive_id")),
            [
                (int(found.group(1)) if found else None, problem)
                for problem in report.problems
                for found in [_AT_POSITION.match(problem)]
            ],
        )


def write_bundle(bundle: dict[str, Any], path: str) -> None:
    """Write a bundle as UTF-8 JSON (key order and whitespace do not matter to verifiers),
    whole or not at all: a full disk left a truncated file, in place of an earlier bundle of
    the same name. A new file is owner-only (0600), as the ledger's own file: a bundle is an
    executive's record (under umask 022 every local user could read it); one written over
    keeps its mode, so an operator who shares bundles chooses by making the file first."""
    text = json.dumps(bundle, ensure_ascii=False, indent=1) + "\n"
    write_output(Path(path), text.encode("utf-8"), new_mode=0o600)
