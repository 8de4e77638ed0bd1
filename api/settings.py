"""The API's settings: one pydantic-settings class over the same environment as the ledger.

`SES_LEDGER_HOME`, `SES_LEDGER_DB` and `SES_LEDGER_ORIGIN` are the contract's variables; the
rest tune the server and have safe defaults. The ledger itself keeps its plain dataclass
(`ledger.config.LedgerConfig`), built here so the two can never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.config import DEFAULT_HOME, DEFAULT_ORIGIN, LedgerConfig, check_origin
from ledger.errors import ConfigurationError


class ApiSettings(BaseSettings):
    #: An empty variable is an unset one, as `LedgerConfig.from_env` (the command line)
    #: reads it: `SES_LEDGER_HOME=` served from the working directory, and an empty number
    #: stopped the server, while every other command took the default.
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
    window_measure: Literal["rating-date", "appraisal-cycle"] = "rating-date"

    @field_validator("origin")
    @classmethod
    def _origin(cls, origin: str) -> str:
        try:
            return check_origin(origin)
        except ConfigurationError as exc:
            raise ValueError(str(exc).removeprefix("SES_LEDGER_ORIGIN ")) from None

    def ledger_config(self) -> LedgerConfig:
        return LedgerConfig(
            home=self.home,
            db_url=self.db or f"sqlite:///{self.home / 'ledger.db'}",
            origin=self.origin,
            checkpoint_every=self.checkpoint_every,
        )
