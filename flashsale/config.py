"""Every path and environment setting the project uses, in one place.

Notebooks and scripts import these instead of writing paths, so they run the same from any working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
# Generated measurements and reports; FLASHSALE_DATA_DIR / FLASHSALE_REPORTS_DIR move them (the tests do).
DATA_DIR = Path(os.environ.get("FLASHSALE_DATA_DIR") or PROJ_ROOT / "data").resolve()
REPORTS_DIR = Path(os.environ.get("FLASHSALE_REPORTS_DIR") or PROJ_ROOT / "reports").resolve()
REFERENCE_DIR = PROJ_ROOT / "data" / "reference"  # published figures, tracked in git
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"

DATABASE_URL_ENV = "FLASHSALE_DATABASE_URL"
REDIS_URL_ENV = "FLASHSALE_REDIS_URL"
HOME_ENV = "FLASHSALE_HOME"
DATABASE_NAME = "flashsale"


def state_dir() -> Path:
    """Where the embedded servers (PostgreSQL, Valkey) keep their directories (`.flashsale/` in the project unless
    overridden)."""
    return Path(os.environ.get(HOME_ENV) or PROJ_ROOT / ".flashsale").resolve()


def external_database_url() -> str | None:
    """The libpq URL of another PostgreSQL to use instead of the embedded one, if the user set one."""
    return os.environ.get(DATABASE_URL_ENV) or None


def external_redis_url() -> str | None:
    """The URL of another Redis (7 or later) or Valkey server to use instead of the embedded Valkey, if the user set
    one."""
    return os.environ.get(REDIS_URL_ENV) or None
