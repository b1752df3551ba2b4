"""User-facing errors: the CLI prints these without a traceback and exits non-zero."""


class DnalmError(Exception):
    """Bad input or an impossible request; the message names the file, record and problem."""


class InputError(DnalmError):
    """A malformed input file or record."""


class ConfigError(DnalmError):
    """An invalid configuration key or value."""
