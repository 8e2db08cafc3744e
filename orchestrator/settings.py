"""Host settings from the environment (prefix ORCH_), built lazily so `--help` needs nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "orch"


class OrchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    home: Path = _default_home()  # ORCH_HOME: store, build cache, run folders of local runs
    db: str | None = None  # ORCH_DB: any SQLAlchemy URL; default SQLite file under home
    adb_host: str = "127.0.0.1"  # ORCH_ADB_HOST / ORCH_ADB_PORT: the adb server to use
    adb_port: int = 5037

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'orch.db'}"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@lru_cache(maxsize=1)
def get_settings() -> OrchSettings:
    return OrchSettings()
