"""All of topowatch's settings in one typed place, read from ``TOPOWATCH_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOPOWATCH_", extra="ignore")

    state_dir: Path = Path(".topowatch")
    # REDIS_URL is honoured as well, as users of docker and hosted Redis expect. Empty = embedded server.
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("TOPOWATCH_REDIS_URL", "REDIS_URL"))

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ui_host: str = "127.0.0.1"
    ui_port: int = 8050
    # Where the dashboard finds the API (docker-compose sets it to the backend service); default: this API.
    api_url: str | None = None

    device: str = "auto"  # auto | cpu | cuda
    # Training's CPU threads (torch and numpy's BLAS); 0: one per core but one, which is left to the snapshot
    # relay and Redis (the paper's models are small: more threads than that only contend with publishing).
    training_threads: int = 0
    analysers: int = 1  # analysis consumer processes started by `topowatch api` / `up`
    consumer_name: str | None = None  # defaults to host name + process id slot

    max_width: int = 8192
    max_epochs: int = 10_000
    # The stream of unanalysed snapshots may hold this many before the worker pauses (it never drops one).
    max_backlog: int = 20_000
    claim_idle_ms: int = 30_000  # pending snapshots of a silent analyser are taken over after this

    @property
    def dashboard_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "topowatch.db"

    @property
    def numba_cache_dir(self) -> Path:
        return self.state_dir / "numba-cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
