"""The database driver of a study storage URL: a bare ``postgresql://`` goes through the driver that is installed
(psycopg 3 from ``medfit[postgres]``, else psycopg2), and a PostgreSQL URL without any driver is one clear error
instead of an import trace."""
from __future__ import annotations

import importlib.util

from medfit.config.secrets import masked_url
from medfit.errors import ConfigError

POSTGRES_SCHEMES = ("postgresql", "postgres")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def driver_url(url: str) -> str:
    """``url`` with its PostgreSQL driver named: psycopg 3 (``medfit[postgres]``) when installed, else psycopg2; a
    URL that names its driver, and any other database, unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in POSTGRES_SCHEMES:
        return url
    for module in ("psycopg", "psycopg2"):
        if _installed(module):
            return f"postgresql+{module}://{rest}"
    raise ConfigError(f"--storage {masked_url(url)}: no PostgreSQL driver is installed; pip install 'medfit[postgres]'")
