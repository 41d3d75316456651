"""Errors that end a run with one clear line (the CLI prints ``error: <message>``)."""


class MedfitError(Exception):
    """Base class: a user-facing problem whose message names the file or key and the fix."""


class ConfigError(MedfitError):
    """A config key is unknown, missing or of the wrong type."""


class DataError(MedfitError):
    """Input data is missing, corrupt, inconsistent or leaks between splits."""


class WeightsError(MedfitError):
    """A pretrained weight file or model folder is missing or does not fit the model."""


def error_lines(exc: MedfitError) -> list[str]:
    """What a command prints for a medfit error: the context it carries (an audit stop: its whole summary and every
    warning), then ``error: <message>``."""
    lines = [str(exc.summary)] if getattr(exc, "summary", None) else []
    lines += [f"warning: {text}" for text in getattr(exc, "warnings", None) or []]
    return lines + [f"error: {exc}"]
