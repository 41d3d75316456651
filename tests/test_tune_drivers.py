"""The PostgreSQL driver of a study storage URL: psycopg 3 (medfit[postgres]) for a bare postgresql:// URL, one clear
error when no driver is installed, other URLs untouched."""
import pytest

from medfit.errors import ConfigError
from medfit.tune import drivers
from medfit.tune.drivers import driver_url


def test_a_bare_postgres_url_goes_through_the_installed_driver(monkeypatch):
    url = "postgresql://tuner:s3cret@db.example:5432/studies"
    assert driver_url("sqlite:////tmp/s.db") == "sqlite:////tmp/s.db"
    assert driver_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"  # a driver named: kept
    monkeypatch.setattr(drivers, "_installed", lambda m: m == "psycopg")
    assert driver_url(url) == "postgresql+psycopg://tuner:s3cret@db.example:5432/studies"
    assert driver_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setattr(drivers, "_installed", lambda m: m == "psycopg2")
    assert driver_url(url) == "postgresql+psycopg2://tuner:s3cret@db.example:5432/studies"
    monkeypatch.setattr(drivers, "_installed", lambda m: False)
    with pytest.raises(ConfigError) as err:
        driver_url(url)
    assert "pip install 'medfit[postgres]'" in str(err.value) and "s3cret" not in str(err.value)
