"""C2SP tlog-checkpoint signed notes, and agreement with the outside verifier."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    format_body,
    key_hash,
    parse_note,
    sign_checkpoint,
    verify_note,
)
from ledger.merkle import MemoryNodeStore, leaf_hash
from tests.conftest import outside_verifier

ORIGIN = "ses-ledger.local/ledger"
ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
ROOT_B64 = base64.b64encode(ROOT).decode()
OTHER_B64 = base64.b64encode(bytes(32)).decode()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def note(key: Ed25519PrivateKey) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, 8, ROOT), ORIGIN, key)


def _sig_line(name: str, blob: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


def test_the_note_has_the_c2sp_layout(key: Ed25519PrivateKey, note: str) -> None:
    body = f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()}\n"
    assert format_body(Checkpoint(ORIGIN, 8, ROOT)) == body
    assert note.startswith(body + "\n\u2014 " + ORIGIN + " ")
    assert note.endswith("\n") and note.count("\n") == 5
    blob = base64.b64decode(note.splitlines()[-1].rsplit(" ", 1)[1])
    raw = key.public_key().public_bytes_raw()
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert blob[:4] == key_hash(ORIGIN, key.public_key())
    key.public_key().verify(blob[4:], body.encode())  # signed over the text with final newline
    assert len(blob) == 4 + 64


def test_sign_parse_verify_round_trip(key: Ed25519PrivateKey, note: str) -> None:
    cp, sigs = parse_note(note)
    assert cp == Checkpoint(ORIGIN, 8, ROOT)
    assert [(s.key_name, s.key_hash) for s in sigs] == [
        (ORIGIN, key_hash(ORIGIN, key.public_key()))
    ]
    assert verify_note(note, ORIGIN, [key.public_key()]) == cp
    assert verify_note(note, ORIGIN, [key.public_key()], origin=ORIGIN) == cp
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest()), ORIGIN, key)
    assert verify_note(empty, ORIGIN, [key.public_key()]).size == 0


def test_a_note_signed_by_another_key_does_not_verify(note: str) -> None:
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_note(note, ORIGIN, [Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_note(note, ORIGIN, [])


def test_a_key_under_another_name_does_not_verify(key: Ed25519PrivateKey, note: str) -> None:
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_note(note, "other.example/log", [key.public_key()])
    with pytest.raises(CheckpointError, match="origin"):
        verify_note(note, ORIGIN, [key.public_key()], origin="other.example/log")


@pytest.mark.parametrize(
    ("old", "new"),
    [("\n8\n", "\n9\n"), ("\n8\n", "\n7\n"), (ROOT_B64, OTHER_B64), (ORIGIN, "x" + ORIGIN)],
)
def test_a_tampered_size_root_or_origin_fails(
    key: Ed25519PrivateKey, note: str, old: str, new: str
) -> None:
    tampered = note.replace(old, new, 1)
    assert tampered != note
    with pytest.raises(CheckpointError):
        verify_note(tampered, tampered.split("\n")[0], [key.public_key()])


def test_unknown_signature_lines_are_ignored(key: Ed25519PrivateKey, note: str) -> None:
    witness = Ed25519PrivateKey.generate()
    body = note.partition("\n\n")[0] + "\n"
    extra = (
        _sig_line(
            "witness.example/w1",
            key_hash("witness.example/w1", witness.public_key()) + witness.sign(body.encode()),
        )
        + _sig_line(ORIGIN, b"\x00\x01\x02\x03" + b"\x00" * 64)  # known name, unknown key ID
        + _sig_line("pq.example/log", b"\x09" * 2000)  # another algorithm, long signature
    )
    both = note + extra
    assert verify_note(both, ORIGIN, [key.public_key()]).size == 8
    assert len(parse_note(both)[1]) == 4
    assert verify_note(both, "witness.example/w1", [witness.public_key()]).size == 8
    with pytest.raises(CheckpointError):
        verify_note(body + "\n" + extra, ORIGIN, [key.public_key()])  # only unknown lines


def test_a_failing_signature_by_a_known_key_rejects_the_note(
    key: Ed25519PrivateKey, note: str
) -> None:
    forged = _sig_line(ORIGIN, key_hash(ORIGIN, key.public_key()) + b"\x00" * 64)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(note + forged, ORIGIN, [key.public_key()])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n08\nAAAA\n\n\u2014 a AAAAAAA=\n", "leading zeros"),
        (f"{ORIGIN}\n-1\nAAAA\n\n\u2014 a AAAAAAA=\n", "leading zeros"),
        (f"{ORIGIN}\n8\n{'A' * 44}\n\u2014 a AAAAAAA=\n", "no blank line"),
        (f"{ORIGIN}\n8\n{'A' * 44}\n\n", "at least one signature"),
        (f"{ORIGIN}\n8\n{'A' * 44}\n\n\u2014 a AAAAAAA=", "end with a newline"),
        (f"{ORIGIN}\n8\n\n\u2014 a AAAAAAA=\n", "three non-empty lines"),
        (f"{ORIGIN}\n8\n{'A' * 43}!\n\n\u2014 a AAAAAAA=\n", "base64"),
        (f"{ORIGIN}\n8\n{'A' * 40}\n\n\u2014 a AAAAAAA=\n", "32 bytes"),
        (f"{ORIGIN}\t\n8\n{'A' * 44}\n\n\u2014 a AAAAAAA=\n", "control characters"),
        (f"{ORIGIN}\n8\n{'A' * 44}\n\n- a AAAAAAA=\n", "malformed signature line"),
        (f"{ORIGIN}\n8\n{'A' * 44}\n\n\u2014 a+b AAAAAAA=\n", "invalid key name"),
        (f"{ORIGIN}\n8\n{'A' * 44}\n\n\u2014 a AAAA\n", "4-byte key ID"),
    ],
)
def test_malformed_notes_are_rejected(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_note(text)


def test_checkpoint_fields_are_validated(key: Ed25519PrivateKey) -> None:
    with pytest.raises(CheckpointError, match="origin"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError, match="origin"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match=">= 0"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(CheckpointError, match="32 bytes"):
        Checkpoint(ORIGIN, 1, ROOT[:31])
    with pytest.raises(CheckpointError, match="key name"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), "has space", key)


# --- agreement with /work/shared/tools/verify_ledger.py ---------------------------------------


def _load_verify_ledger() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_ledger", outside_verifier())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verify_ledger_accepts_our_roots_and_proofs() -> None:
    vl = _load_verify_ledger()
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(77)]
    store = MemoryNodeStore(leaves)
    for size in (1, 2, 5, 8, 13, 64, 77):
        assert vl.root_of(leaves[:size]) == store.root(size)
        for i in {0, size // 2, size - 1}:
            assert vl.verify_inclusion(
                i, size, leaves[i], store.inclusion_proof(i, size), store.root(size)
            )
        for first in {1, size // 2, size - 1, size} - {0}:
            assert vl.verify_consistency(
                first,
                size,
                store.consistency_proof(first, size),
                store.root(first),
                store.root(size),
            )
    bad = store.inclusion_proof(3, 77)
    bad[0] = bytes(32)
    assert not vl.verify_inclusion(3, 77, leaves[3], bad, store.root(77))


class _FakeLedger(BaseHTTPRequestHandler):
    """The public endpoints verify_ledger.py reads, served from our own modules."""

    routes: dict[str, Any] = {}

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
        body = self.routes[url.path](query)
        is_text = isinstance(body, str)
        data = (body if is_text else json.dumps(body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if is_text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_ledger(key: Ed25519PrivateKey) -> Iterator[str]:
    entries: list[dict[str, Any]] = []
    store = MemoryNodeStore()
    prev: dict[str, str | None] = {}
    for n in range(11):
        stream = f"A-2024-E{n % 3}"
        e: dict[str, Any] = {
            "position": 3 + 2 * n,
            "stream_id": stream,
            "stream_version": sum(x["stream_id"] == stream for x in entries) + 1,
            "type": "ProgressReviewed",
            "occurred_on": "2024-03-01",
            "recorded_at": f"2024-03-01T10:00:{n:02d}.000000Z",
            "actor": "R1",
            "submitted_by": "hr-app-1",
            "policy": "ses-basic-2012",
            "data": {"appraisal_id": stream, "notes": "on track \u2014 \u00e9t\u00e9"},
            "prev_hash": prev.get(stream),
            "key_id": "k1",
        }
        hashed = {k: e[k] for k in e if k not in ("position", "key_id")}
        e["hash"] = hashlib.sha256(rfc8785.dumps(hashed)).hexdigest()
        e["signature"] = base64.b64encode(key.sign(bytes.fromhex(e["hash"]))).decode()
        prev[stream] = e["hash"]
        store.append(leaf_hash(bytes.fromhex(e["hash"])))
        entries.append(e)
    leaf_of = {e["position"]: i for i, e in enumerate(entries)}
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    _FakeLedger.routes = {
        "/v1/ledger/keys": lambda q: {
            "keys": [
                {
                    "key_id": "k1",
                    "algorithm": "Ed25519",
                    "public_key": public,
                    "valid_from": None,
                    "valid_until": None,
                }
            ]
        },
        "/v1/ledger/events": lambda q: {
            "events": [e for e in entries if e["position"] > q["after"]],
            "next_after": None,
        },
        "/v1/ledger/checkpoint": lambda q: sign_checkpoint(
            Checkpoint(ORIGIN, store.size, store.root()), ORIGIN, key
        ),
        "/v1/ledger/proofs/inclusion": lambda q: {
            "leaf_index": leaf_of[q["position"]],
            "tree_size": q["tree_size"],
            "hashes": [
                base64.b64encode(h).decode()
                for h in store.inclusion_proof(leaf_of[q["position"]], q["tree_size"])
            ],
        },
        "/v1/ledger/proofs/consistency": lambda q: {
            **q,
            "hashes": [
                base64.b64encode(h).decode()
                for h in store.consistency_proof(q["first"], q["second"])
            ],
        },
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLedger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_verify_ledger_verifies_a_ledger_served_from_our_modules(
    fake_ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    vl = _load_verify_ledger()
    assert vl.main(fake_ledger, "token") == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "events: 11 checked" in out and "ledger verified" in out
