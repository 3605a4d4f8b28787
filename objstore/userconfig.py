"""The user's own settings (``ds config --global``): one small TOML file per user.

Where: ``$DS_CONFIG_HOME/config.toml`` if that is set (tests, several identities), else
``config.toml`` in platformdirs' user config folder for "objstore" (on Linux the XDG rule,
without importing platformdirs). Settings of one
store (hash, chunking, its remotes) stay in its ``.dsstore/config`` (``config.py``).
An environment variable, where a setting has one, wins over the file: a script or CI
job can override the user's choice without editing it.

The file is written in a fixed shape (one table per section, through the store config's
TOML writer); a key this version does not know is refused on reading, naming the known
ones, rather than silently ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DsError, FormatError

ENV_HOME = "DS_CONFIG_HOME"
FILE_NAME = "config.toml"


@dataclass(frozen=True)
class Setting:
    kind: type  # str or int
    help: str
    env: str | None = None  # an environment variable that wins over the file
    minimum: int | None = None


SETTINGS: dict[str, Setting] = {
    "user.name": Setting(str, "author recorded in the versions you commit", env="DS_AUTHOR"),
    "cache.rows": Setting(int, "rows each in-memory cache decodes at once; lower it on a "
                          "small machine (default 50000)", env="DS_CACHE_ROWS", minimum=1),
    "remote.default": Setting(str, "remote (a name or URL) for stores that set none"),
}


def known_keys() -> str:
    return ", ".join(SETTINGS)


def check_key(key: str) -> Setting:
    setting = SETTINGS.get(key)
    if setting is None:
        raise DsError(f"unknown user setting {key!r}; known: {known_keys()}")
    return setting


def config_path() -> Path:
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser() / FILE_NAME
    folder = _xdg_config_folder()
    if folder is None:
        import platformdirs

        folder = platformdirs.user_config_path("objstore")
    return folder / FILE_NAME


def _xdg_config_folder() -> Path | None:
    """platformdirs' user config folder where the XDG rule alone settles it: on Linux,
    ``$XDG_CONFIG_HOME/objstore``, else ``$HOME/.config/objstore``. Every command reads
    the settings, and importing platformdirs cost ~5 ms of each start. None where
    platformdirs knows more (another system, Android, a relative path)."""
    import sys

    if sys.platform != "linux" or hasattr(sys, "getandroidapilevel") or os.environ.get("ANDROID_DATA"):
        return None
    xdg, home = os.environ.get("XDG_CONFIG_HOME", ""), os.environ.get("HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "objstore"
    if not xdg.strip() and os.path.isabs(home):
        return Path(home) / ".config" / "objstore"
    return None


def parse(key: str, raw: str) -> str | int:
    """A value typed on the command line, checked against the setting's kind."""
    s = check_key(key)
    if s.kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise DsError(f"{key} takes a whole number, not {raw!r}") from None
        if s.minimum is not None and value < s.minimum:
            raise DsError(f"{key} must be {s.minimum} or more (got {value})")
        return value
    if not raw.strip():
        raise DsError(f"{key} cannot be empty; use --unset to remove it")
    return raw


def load(path: Path | None = None) -> dict[str, str | int]:
    """The file's settings as ``section.key`` -> value (empty when there is no file)."""
    path = path or config_path()
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as e:
        raise FormatError(f"{path} is not valid TOML ({e}); fix it or remove it") from None
    import tomllib  # only when there is a file: most users have none

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FormatError(f"{path} is not valid TOML ({e}); fix it or remove it") from None
    out: dict[str, str | int] = {}
    for section, table in raw.items():
        items = table.items() if isinstance(table, dict) else [(None, table)]
        for name, value in items:
            key = f"{section}.{name}" if name is not None else section
            s = SETTINGS.get(key)
            if s is None:
                raise FormatError(f"{path}: unknown setting {key!r} (known: {known_keys()}); "
                                  "fix or remove it")
            if not isinstance(value, s.kind) or isinstance(value, bool):
                what = "a whole number" if s.kind is int else "a string"
                raise FormatError(f"{path}: {key} must be {what}; fix or remove it")
            out[key] = value
    return out


def save(values: dict[str, str | int], path: Path | None = None) -> None:
    from .config import toml_text
    from .fsutil import atomic_write

    path = path or config_path()
    tables: dict[str, dict] = {}
    for key in sorted(values):
        head, _, name = key.partition(".")
        tables.setdefault(head, {})[name] = values[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, toml_text(tables, "objstore user settings; edit with `ds config --global KEY VALUE`")
                 .encode())


def set_value(key: str, raw: str) -> str | int:
    value = parse(key, raw)
    values = load()
    values[key] = value
    save(values)
    return value


def unset(key: str) -> bool:
    """Remove ``key`` from the file; False if it was not set there."""
    check_key(key)
    values = load()
    if values.pop(key, None) is None:
        return False
    save(values)
    return True


def effective(key: str) -> tuple[str | int | None, str]:
    """(value, where it comes from: the environment variable's name, the file, or "")."""
    s = check_key(key)
    if s.env and os.environ.get(s.env):
        try:
            return parse(key, os.environ[s.env]), s.env
        except DsError:
            pass  # an unusable variable is ignored here as where it is read
    value = load().get(key)
    return (value, str(config_path())) if value is not None else (None, "")


def user_name() -> str | None:
    """The author to record: ``DS_AUTHOR``, else ``user.name``, else None (the login name)."""
    return effective("user.name")[0]  # type: ignore[return-value]


def cache_rows() -> int | None:
    return effective("cache.rows")[0]  # type: ignore[return-value]


def default_remote() -> str | None:
    return effective("remote.default")[0]  # type: ignore[return-value]


def export_env(environ: dict[str, str] | None = None) -> None:
    """Put the file's settings that have an environment variable into ``environ`` (default
    ``os.environ``) where that variable is unset, so code that reads the variable at import
    (``limits.CACHE_ROWS``) follows the file too. The CLI calls this just before a command's
    code runs (which imports the store's modules); an unreadable file is left for ``ds config``
    to report."""
    env = os.environ if environ is None else environ
    try:
        values = load()
    except DsError:
        return
    for key, value in values.items():
        var = SETTINGS[key].env
        if var and not env.get(var):
            env[var] = str(value)
