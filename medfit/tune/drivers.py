"""The database driver of a study storage URL: ``postgresql://`` goes through psycopg 3 (``medfit[postgres]``) when
that is the driver installed, and a PostgreSQL URL without any driver is one clear error instead of an import trace."""
from __future__ import annotations

import importlib.util

from medfit.config.secrets import masked_url
from medfit.errors import ConfigError

POSTGRES_SCHEMES = ("postgresql", "postgres")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver named (SQLAlchemy's bare ``postgresql://`` means psycopg2, which
    ``medfit[postgres]`` does not install); other URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in POSTGRES_SCHEMES:
        return url
    if _installed("psycopg2"):
        return f"postgresql://{rest}"
    if _installed("psycopg"):
        return f"postgresql+psycopg://{rest}"
    raise ConfigError(f"--storage {masked_url(url)}: no PostgreSQL driver is installed; pip install 'medfit[postgres]'")
