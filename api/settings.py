"""The API's settings: one pydantic-settings class over the same environment as the ledger.

`SES_LEDGER_HOME`, `SES_LEDGER_DB` and `SES_LEDGER_ORIGIN` are the contract's variables; the
rest tune the server and have safe defaults. The ledger itself keeps its plain dataclass
(`ledger.config.LedgerConfig`), built here so the two can never disagree.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.config import (
    DEFAULT_AGGREGATE_CACHE_EVENTS,
    DEFAULT_HOME,
    DEFAULT_ORIGIN,
    DEFAULT_STORE_WAIT_SECONDS,
    MAX_STORE_WAIT_SECONDS,
    LedgerConfig,
    check_home,
    origin_problem,
)
from ledger.policies.removal import RATING_DATE, WindowMeasure


class ApiSettings(BaseSettings):
    #: A variable set to the empty string counts as unset (its default), as
    #: `LedgerConfig.from_env` and so the CLI read it: an empty `SES_LEDGER_ORIGIN` was
    #: taken as the origin "", and every checkpoint (and receipt) was then a 500.
    model_config = SettingsConfigDict(
        env_prefix="SES_LEDGER_", extra="ignore", env_ignore_empty=True
    )

    home: Path = Path(DEFAULT_HOME)
    #: `sqlite:///...` or `postgresql://...`; empty means `<home>/ledger.db`.
    db: str = ""
    origin: str = DEFAULT_ORIGIN
    #: Issue a checkpoint once this many events are not covered by one.
    checkpoint_every: int = Field(default=1000, ge=1)
    #: ...and at least this often (seconds) while the tree grows; 0 turns the timer off.
    checkpoint_interval_seconds: float = Field(default=60.0, ge=0)
    #: `GET /v1/ledger/checkpoint` issues a new one when the tree has grown, at most once
    #: per this many seconds (0: on every request that finds the tree grown).
    checkpoint_max_age_seconds: float = Field(default=1.0, ge=0, le=3600)
    #: Seconds of clock skew tolerated on a token's `exp` (the contract allows at most 2).
    token_leeway_seconds: float = Field(default=2.0, ge=0, le=2)
    #: Keep the read models current from a background thread (reads then only wait for
    #: this process's own writes); off: every read catches up inline.
    project_in_background: bool = True
    #: Seconds between the background thread's checks for other processes' writes.
    projection_interval_seconds: float = Field(default=0.5, gt=0)
    #: Requests served at once (threads); bounded by the store's connection pool.
    threads: int = Field(default=8, ge=1, le=64)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: REM-2/REM-3: how "within 3/5 years" is measured (rules.md: a named policy setting the
    #: agency chooses), for the compliance report and removal histories asked without one.
    window_measure: WindowMeasure = RATING_DATE
    #: Historical reports (`as_of_position` / `known_at`) replayed from the log at once per
    #: process (`projections.replays`); more wait `replay_wait_seconds`, then get 503.
    replay_builds: int = Field(default=1, ge=1, le=64)
    #: ... and historical reads of one record (an executive's, an appraisal's, an audit
    #: trail as of a point) and evidence bundles, in slots of their own: their cost grows
    #: with the record.
    record_replay_builds: int = Field(default=2, ge=1, le=64)
    replay_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    #: Built replays kept for the same bound's next requests: how many, and their memory.
    replay_cache_entries: int = Field(default=4, ge=0, le=1000)
    replay_cache_mb: int = Field(default=256, ge=0)
    #: PostgreSQL: how long a request waits for a connection to the store before it is
    #: answered 503 `unavailable` (the server is down or refuses, or every connection is busy).
    store_wait_seconds: float = Field(
        default=DEFAULT_STORE_WAIT_SECONDS, gt=0, le=MAX_STORE_WAIT_SECONDS
    )
    #: Events the aggregates a worker keeps between commands may hold together (0: none;
    #: `ledger.aggregate_cache`).
    aggregate_cache_events: int = Field(default=DEFAULT_AGGREGATE_CACHE_EVENTS, ge=0)

    @field_validator("origin")
    @classmethod
    def _c2sp_key_name(cls, origin: str) -> str:
        if (problem := origin_problem(origin)) is not None:
            raise ValueError(problem)
        return origin

    def ledger_config(self) -> LedgerConfig:
        return LedgerConfig(
            home=check_home(self.home),
            db_url=self.db or f"sqlite:///{self.home / 'ledger.db'}",
            origin=self.origin,
            checkpoint_every=self.checkpoint_every,
            store_wait_seconds=self.store_wait_seconds,
            aggregate_cache_events=self.aggregate_cache_events,
        )
