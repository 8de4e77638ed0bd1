"""Where the ledger keeps its data, read from the environment (api-contract.md, Configuration).

Plain dataclass rather than pydantic-settings: `ledger/` depends only on the standard library,
`eventsourcing` and `cryptography`. The API wraps this in its own settings class.
"""

from __future__ import annotations

import errno
import math
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ledger.errors import ConfigurationError, StoreUnavailable

DEFAULT_HOME = "./.ses-ledger"
DEFAULT_ORIGIN = "ses-ledger.local/ledger"
#: The API's token signing secret, under the ledger home (`api.auth`).
TOKEN_KEY_FILE = "token.key"
#: Seconds a request (or command) waits for a connection to the PostgreSQL store before it
#: gives up (`ledger.errors.StoreUnreachable`; the API's 503): SES_LEDGER_STORE_WAIT_SECONDS.
DEFAULT_STORE_WAIT_SECONDS = 5.0
MAX_STORE_WAIT_SECONDS = 300.0
#: SES_LEDGER_AGGREGATE_CACHE_EVENTS (`ledger.aggregate_cache`): entries of ~1 KB stored or
#: less count one event each, longer ones one per KB: about 100 MB at most.
DEFAULT_AGGREGATE_CACHE_EVENTS = 100_000
#: The wait, as `ledger.recorders_postgres.LedgerPostgresFactory` reads it from the
#: eventsourcing settings (`LedgerConfig.eventsourcing_env`).
STORE_WAIT_KEY = "LEDGER_STORE_WAIT_SECONDS"
#: A PostgreSQL schema the ledger can name unquoted (PostgreSQL folds unquoted names to lower
#: case, so `Ledger` would be created as one schema and looked up as another).
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class LedgerConfig:
    home: Path
    db_url: str
    origin: str = DEFAULT_ORIGIN
    #: Issue a checkpoint automatically once this many events are not yet covered.
    checkpoint_every: int = 1000
    #: The command only reads (`verify`, `replay`, `audit`, `bundle export`): an SQLite
    #: file that cannot be written (an archive on read-only media) is opened read-only
    #: (`sqlite_database`), where SQLite would fail making its -wal and -shm files.
    read_only: bool = False
    #: PostgreSQL, for a `read_only` command: the role may not write the ledger's schema
    #: (no CREATE on it, or a read-only session: a standby, `default_transaction_read_only`),
    #: so the store is opened without creating tables (`ledger.store_probe` finds out).
    store_read_only: bool = False
    #: PostgreSQL: the longest wait for a connection (DEFAULT_STORE_WAIT_SECONDS).
    store_wait_seconds: float = DEFAULT_STORE_WAIT_SECONDS
    #: Events the aggregates kept in memory between commands may hold together
    #: (`ledger.aggregate_cache`; 0: none kept, every command replays its streams).
    aggregate_cache_events: int = DEFAULT_AGGREGATE_CACHE_EVENTS

    def __post_init__(self) -> None:
        check_origin(self.origin)
        if not 0 < self.store_wait_seconds <= MAX_STORE_WAIT_SECONDS:
            raise ConfigurationError(
                f"SES_LEDGER_STORE_WAIT_SECONDS must be more than 0 and at most "
                f"{MAX_STORE_WAIT_SECONDS:g}, got {self.store_wait_seconds!r}"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LedgerConfig:
        env = os.environ if environ is None else environ
        home = check_home(Path(env.get("SES_LEDGER_HOME") or DEFAULT_HOME))
        db_url = env.get("SES_LEDGER_DB") or f"sqlite:///{home / 'ledger.db'}"
        origin = env.get("SES_LEDGER_ORIGIN") or DEFAULT_ORIGIN  # checked in __post_init__
        every = _whole_number(env, "SES_LEDGER_CHECKPOINT_EVERY", 1000, minimum=1)
        wait = _store_wait(env)
        cached = _whole_number(
            env, "SES_LEDGER_AGGREGATE_CACHE_EVENTS", DEFAULT_AGGREGATE_CACHE_EVENTS
        )
        return cls(
            home=home,
            db_url=db_url,
            origin=origin,
            checkpoint_every=every,
            store_wait_seconds=wait,
            aggregate_cache_events=cached,
        )

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith(("postgresql://", "postgres://"))

    def eventsourcing_env(self, *, create: bool = True) -> dict[str, str]:
        """The eventsourcing library's persistence settings for this store (`create`: make
        a missing SQLite file and its directory, owner-only, as the library would make them
        under the umask; without it nothing is created)."""
        if self.is_postgres:
            try:
                parts = urlsplit(self.db_url)
                port = parts.port  # ValueError: not a number
            except ValueError as exc:
                raise StoreUnavailable(f"SES_LEDGER_DB {self.redacted_db_url()!r}: {exc}") from None
            schema = self._postgres_schema(parts.query)
            return {
                "POSTGRES_SCHEMA": schema,
                "PERSISTENCE_MODULE": "ledger.recorders_postgres:LedgerPostgresFactory",
                "APPLICATION_RECORDER_TOPIC": "ledger.recorders_postgres:LedgerPostgresRecorder",
                "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
                "POSTGRES_HOST": parts.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(port or 5432),
                "POSTGRES_USER": unquote(parts.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parts.password or ""),
                "POSTGRES_POOL_SIZE": "4",
                "POSTGRES_MAX_OVERFLOW": "8",
                "POSTGRES_CONN_MAX_AGE": "600",
                "POSTGRES_PRE_PING": "y",
                STORE_WAIT_KEY: repr(float(self.store_wait_seconds)),
                "POSTGRES_LOCK_TIMEOUT": "10",
                "ORIGINATOR_ID_TYPE": "text",
                "CREATE_TABLE": "n" if self.store_read_only else "y",
            }
        path = self.sqlite_path()
        # The directory is made only where a ledger may be made: a command that reads one
        # must not leave a mistyped home behind as an empty directory (README, Command
        # line); a path under a file is refused alike.
        try:
            if create:
                make_private_dir(path.parent)
            else:
                check_dir_path(path.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the directory of the SQLite store {path}: {exc.strerror}"
            ) from exc
        if create:
            make_private_file(path)
            if not self.read_only:
                use_wal(path)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "APPLICATION_RECORDER_TOPIC": "ledger.recorders:LedgerSQLiteRecorder",
            "SQLITE_DBNAME": self.sqlite_database(),  # the library opens it with uri=True
            "SQLITE_LOCK_TIMEOUT": "30",
            "ORIGINATOR_ID_TYPE": "text",
            "CREATE_TABLE": "y",
        }

    def _postgres_schema(self, query: str) -> str:
        """`?schema=name` (or none: the server's default, `public`). Anything else in the
        query is refused rather than ignored: a typo such as `?scheme=` would otherwise put
        the ledger into `public`, for good (RET-1)."""
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise StoreUnavailable(
                f"SES_LEDGER_DB {self.redacted_db_url()!r}: malformed query "
                f"{redacted_query(query)!r}; "
                "only ?schema=NAME is understood"
            ) from None
        unknown = sorted(set(params) - {"schema"})
        if unknown:
            raise StoreUnavailable(
                f"SES_LEDGER_DB {self.redacted_db_url()!r}: unknown parameter "
                f"{unknown[0]!r}; only ?schema=NAME is understood"
            )
        values = params.get("schema", [""])
        if len(values) > 1:
            raise StoreUnavailable(f"SES_LEDGER_DB {self.redacted_db_url()!r}: schema given twice")
        schema = values[0]
        if schema and not _SCHEMA.fullmatch(schema):
            raise StoreUnavailable(
                f"SES_LEDGER_DB {self.redacted_db_url()!r}: schema {schema!r} must be 1-63 "
                "lower-case letters, digits and underscores, not starting with a digit (the "
                "ledger's SQL names it unquoted)"
            )
        return schema

    def sqlite_path(self) -> Path:
        """The SQLite file (StoreUnavailable: the URL names no SQLite file)."""
        if not self.db_url.startswith("sqlite:///"):
            raise StoreUnavailable(
                "SES_LEDGER_DB must start with sqlite:/// or postgresql://, "
                f"got {self.redacted_db_url()!r}"
            )
        return Path(self.db_url[len("sqlite:///") :])

    def sqlite_database(self) -> str:
        """The name to open the SQLite file by (`sqlite3.connect(..., uri=True)`): its path,
        or, for a command that only reads (`read_only`) and a file or directory that cannot
        be written, a read-only URI (`read_only_uri`)."""
        path = self.sqlite_path()
        if not self.read_only or not path.is_file() or _writable(path):
            return str(path)
        return read_only_uri(path)

    @property
    def opens_read_only(self) -> bool:
        """The SQLite file is opened read-only (`sqlite_database`): nothing can be written."""
        if not self.read_only:
            return False
        if self.is_postgres:
            return self.store_read_only
        return self.sqlite_database() != str(self.sqlite_path())

    def redacted_db_url(self) -> str:
        """The store URL without its secrets, safe for logs and messages: the password, the
        value of any query parameter but `schema` (libpq takes `?password=`, and such a
        URL is refused by naming it) and a fragment are shown as `***`. Split by hand, not
        by `urlsplit`: a password with a `/`, `?` or `#` that was not percent-encoded ends
        the network location there, and `urlsplit` then finds no password to hide."""
        scheme, sep, rest = self.db_url.partition("://")
        if not sep or scheme == "sqlite":
            return self.db_url
        userinfo, at, after = rest.rpartition("@")
        if at:
            user, colon, _password = userinfo.partition(":")
            rest = f"{user}:***@{after}" if colon else f"{userinfo}@{after}"
        rest, hash_, fragment = rest.partition("#")
        location, question, query = rest.partition("?")
        return (
            f"{scheme}://{location}{question}{redacted_query(query)}"
            f"{hash_}{'***' if fragment else ''}"
        )


def redacted_query(query: str) -> str:
    """A URL query with the value of every parameter but `schema` shown as `***`."""
    pieces = []
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        pieces.append(
            f"{name}={'***' if value and name != 'schema' else value}" if equals else name
        )
    return "&".join(pieces)


def check_home(home: Path) -> Path:
    """SES_LEDGER_HOME, unless it (or a directory above it) is a file: StoreUnavailable,
    naming the variable. Each command met such a home at a file of its own under it
    ("cannot create the directory of the SQLite store ...", "token.key: Not a directory"),
    which did not say what to correct."""
    try:
        check_dir_path(home)
    except NotADirectoryError as exc:
        raise StoreUnavailable(
            f"SES_LEDGER_HOME {home} cannot be used: {exc.filename} is a file, not a directory"
        ) from None
    return home


def check_origin(origin: str) -> str:
    """SES_LEDGER_ORIGIN, usable as a checkpoint's origin line and its signature's key name
    (`origin_problem`); ConfigurationError otherwise, at once, rather than in a traceback at
    the first checkpoint, after events were written."""
    if (problem := origin_problem(origin)) is not None:
        raise ConfigurationError(f"SES_LEDGER_ORIGIN {origin!r}: {problem}")
    return origin


def check_dir_path(path: Path) -> list[Path]:
    """The directories of `path` that are missing, innermost first, without making any
    (NotADirectoryError: the nearest one that exists is a file)."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            if not directory.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
            break
        missing.append(directory)
    return missing


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700 (owner only), whatever the
    umask: the ledger's home holds the token secret and the signing keys, and under a
    permissive umask a world-writable home would let anyone swap `token.key` for their own
    (a running server reloads it) or rewrite the public key ring. Directories that exist
    are left as they are."""
    missing = check_dir_path(path)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask


def _writable(path: Path) -> bool:
    """SQLite can write the database: the file, and the directory its -wal and -shm go in."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def read_only_uri(path: Path) -> str:
    """An SQLite URI that reads the ledger file `path` without writing anything.

    `mode=ro` opens it read-only. A WAL-mode database is still read through its -wal and
    -shm files, which SQLite makes when they are missing: that works while the directory can
    be written, or when both files exist (SQLite then reads the -shm without writing it).

    In a directory that cannot be written with no -wal (or an empty one) beside the file,
    `immutable=1` is added: SQLite then reads the file alone, with no -shm, no locks and no
    check for changes (sqlite.org/uri.html: for a file on read-only media; one that does
    change gives wrong answers or SQLITE_CORRUPT). That is safe here because every committed
    transaction is then in the file itself (a -wal would hold those not yet copied back, and
    immutable ignores it), and no one is writing it: a WAL-mode writer keeps its -wal while
    it has the database open, and none can be made in this directory. A -wal that holds
    something without its -shm cannot be read at all there: refused, with what to do, rather
    than read without the transactions it holds.
    """
    absolute = path.resolve()
    # The path's bytes: as text it may hold surrogates (a name that is not UTF-8, or any
    # name beyond ASCII under LC_ALL=C with PYTHONUTF8=0), which quote() cannot encode.
    uri = f"file:{quote(os.fsencode(absolute))}?mode=ro"
    wal, shm = Path(f"{absolute}-wal"), Path(f"{absolute}-shm")
    if os.access(absolute.parent, os.W_OK) or (wal.exists() and shm.exists()):
        return uri
    if not wal.exists() or wal.stat().st_size == 0:
        return f"{uri}&immutable=1"
    raise StoreUnavailable(
        f"cannot read the SQLite store {path}: its write-ahead log {wal} holds transactions "
        f"that SQLite reads only through {shm}, which cannot be made in a directory that "
        "cannot be written; copy the ledger's files to a writable directory and read it there"
    )


def make_private_file(path: Path) -> None:
    """Create the SQLite file `path`, empty (which SQLite takes for a new database), with
    mode 0600 whatever the umask, if nothing is there yet.

    Ledger data is personnel data. SQLite would create the file under the umask (0644 in an
    existing home of 0755, readable by every local user), and it gives its `-wal` and `-shm`
    files the database file's mode, so the mode chosen here is theirs too. An existing file
    is left as it is: its mode is its owner's choice (`ses-ledger serve` warns of one that
    others may read).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # not creatable here (read-only, a directory in the way): SQLite says why
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


#: Seconds `use_wal` polls while another process holds the file (the store's lock timeout).
WAL_SWITCH_TIMEOUT = 30.0


def use_wal(path: Path, timeout: float = WAL_SWITCH_TIMEOUT) -> None:
    """Put the SQLite file `path` in WAL mode, polling while another process holds it.

    eventsourcing switches a file to WAL as it opens its first connection, with no retry:
    two processes opening a new ledger at once (`serve`'s workers, compose's API and
    projector) both switch it, and SQLite answers one of them "database is locked" at once,
    whatever the busy timeout (seen: 143 of 600 openings by two processes at once; one
    `serve --workers 2` worker failed so, and the server stopped with status 3). Switched
    here first, the library finds it in WAL mode and only reads that. A file already in WAL
    mode is only read; one that cannot be opened or switched is left for the library to
    report."""
    import sqlite3
    from contextlib import closing

    from ledger.recorders import retry_while_locked

    def switch() -> None:
        with closing(sqlite3.connect(path, timeout=timeout)) as connection:
            mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0])
            if mode.lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")

    try:
        retry_while_locked(switch, timeout)
    except sqlite3.Error:
        return


def origin_problem(origin: str) -> str | None:
    """Why `origin` cannot name the ledger's checkpoints, or None if it can.

    The origin is both the checkpoint's first line and the key name on its signature lines
    (api-contract.md, Configuration), and a C2SP signed note's key name is non-empty UTF-8
    with no Unicode space and no `+` (c2sp.org/signed-note): other verifiers (Go's
    `golang.org/x/mod/sumdb/note`) split a signature line at its first space and refuse such
    a name, so every checkpoint signed under it would be unreadable to them.
    """
    if not origin:
        return "the checkpoint origin must not be empty"
    for char in origin:
        if char.isspace() or char == "+":
            return (
                f"a checkpoint origin (the key name of its C2SP signed note) holds no spaces "
                f"and no '+', found {char!r}"
            )
        if unicodedata.category(char) == "Cs":  # what Python reads of bytes not UTF-8
            return (
                f"a checkpoint origin is UTF-8 text, and this is not (found {char!r}): in a "
                "locale that is not UTF-8 (LC_ALL=C with PYTHONUTF8=0) every character "
                "beyond ASCII reads so; use a UTF-8 locale"
            )
        if unicodedata.category(char) == "Cc":
            return f"a checkpoint origin holds no control characters, found {char!r}"
    return None


def _whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(
            f"{name} must be a whole number of {minimum} or more, got {text!r}"
        )
    return value


def _store_wait(env: Mapping[str, str]) -> float:
    name = "SES_LEDGER_STORE_WAIT_SECONDS"
    text = env.get(name)
    if not text:
        return DEFAULT_STORE_WAIT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_STORE_WAIT_SECONDS:  # NaN too
        raise ConfigurationError(
            f"{name} must be a number of seconds more than 0 and at most "
            f"{MAX_STORE_WAIT_SECONDS:g}, got {text!r}"
        )
    return value


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity set where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
