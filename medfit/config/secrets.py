"""Secrets in configs (database URLs with a password): masked in everything medfit writes or shows.

A URL's password (``scheme://user:PASSWORD@host``) and ``password=`` / ``token=`` query values become ``***``. A
masked config still loads; only the stores it names need the real URL again (pass it by --storage or environment).
"""
from __future__ import annotations

import re
from typing import Any

import yaml

# Config keys whose values may carry credentials.
SECRET_KEYS = ("tune.storage", "train.mlflow_uri")
MASK = "***"
_USERINFO = re.compile(r"^([A-Za-z][\w+.-]*://[^:/@?#]*:)([^/?#]*)(@[^@/?#]*)")  # the password ends at the last @
_QUERY = re.compile(r"([?&](?:password|passwd|pwd|token|secret)=)([^&#]*)", re.IGNORECASE)


def masked_url(url: str) -> str:
    """The URL with its password and secret query values replaced by ***."""
    return _QUERY.sub(lambda m: m.group(1) + MASK, _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), url, count=1))


def masked_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict (as ``config_to_dict`` gives) with every secret key's value masked."""
    out = dict(data)
    for key in SECRET_KEYS:
        section, name = key.split(".")
        if isinstance(out.get(section), dict) and isinstance(out[section].get(name), str):
            out[section] = {**out[section], name: masked_url(out[section][name])}
    return out


def masked_yaml(data: dict[str, Any]) -> str:
    """A config dict as YAML, in field order, secrets masked: what run folders, studies and reports keep."""
    return yaml.safe_dump(masked_dict(data), sort_keys=False)
