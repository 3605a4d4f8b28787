"""The store config and the user settings file survive a write and a read, whatever they hold.

Both are written with tomli-w and read with tomllib (``load_config``, and ``ds status``'s quick
path, which must not import the writer).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore import userconfig
from objstore.config import StoreConfig, load_config, save_config
from objstore.store import Store

# any text a name or value may hold, but lone surrogates (no UTF-8 file can hold them)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
ODD = ["a.b", "with space", 'q"uo\'te', "back\\slash", "ünïcødé ✓", "tab\there", "del\x7fchar",
       "new\nline", "[brackets]", "=", "#hash", ""]
NAMES = st.one_of(st.sampled_from(ODD), TEXT)
SCALARS = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False), NAMES)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)), max_leaves=8)
REMOTES = st.dictionaries(NAMES, st.fixed_dictionaries(
    {"url": NAMES}, optional={"options": st.dictionaries(NAMES, VALUES, max_size=4)}), max_size=3)
BRANCHES = st.dictionaries(NAMES, st.fixed_dictionaries({}, optional={
    "remote": NAMES, "merge": NAMES.map(lambda b: f"refs/heads/{b}")}), max_size=3)


def expected(config: StoreConfig) -> StoreConfig:
    """What a read gives back: no empty ``options`` table, no branch without an upstream."""
    remotes = {name: {"url": r["url"], **({"options": r["options"]} if r.get("options") else {})}
               for name, r in config.remotes.items()}
    branches = {name: b for name, b in config.branches.items() if b}
    return replace(config, remotes=remotes, branches=branches)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(remotes=REMOTES, branches=BRANCHES, sparse=st.lists(NAMES, max_size=4),
       default=st.one_of(st.none(), NAMES.filter(bool)))
def test_every_value_of_the_store_config_round_trips(
    tmp_path: Path, remotes: dict, branches: dict, sparse: list[str], default: str | None
) -> None:
    config = StoreConfig(remote=default, remotes=remotes, sparse=sparse, branches=branches)
    path = tmp_path / "config"
    save_config(path, config)
    assert load_config(path) == expected(config)


def test_a_control_character_in_a_value_keeps_the_config_readable(tmp_path: Path) -> None:
    """DEL (0x7f) was written raw, which TOML forbids: the store could not open its own config."""
    config = StoreConfig(remote="o", sparse=["data/\x7f*"], remotes={
        "o": {"url": "s3://bucket/x\x7f", "options": {"secret": "ab\x7fcd", "n": {"k\x7f": ["\x7f"]}}}},
        branches={"main\x7f": {"remote": "o", "merge": "refs/heads/main\x7f"}})
    path = tmp_path / "config"
    save_config(path, config)
    assert load_config(path) == config


def test_a_name_beyond_the_bmp_keeps_the_config_readable(tmp_path: Path) -> None:
    """A remote named with an emoji was quoted as a JSON surrogate pair, which TOML refuses."""
    config = StoreConfig(remote="data \U0001f4e6", remotes={"data \U0001f4e6": {"url": "/srv/\U00010000"}})
    path = tmp_path / "config"
    save_config(path, config)
    assert load_config(path) == config


def test_odd_names_round_trip_through_a_store(work: Path) -> None:
    """Remote and branch names with dots, quotes and non-ASCII letters, through a reopened store."""
    s = Store.init(work)
    remotes = {name: {"url": f"/srv/{i}", "options": {"endpoint_url": name, "anon": True, "retries": 3,
                                                      "config_kwargs": {"max_pool": 8, "s3": {"a.b": name}}}}
               for i, name in enumerate(ODD)}
    branches = {name: {"remote": name, "merge": f"refs/heads/{name}"} for name in ODD}
    s.set_config(replace(s.config, remote="a.b", remotes=remotes, branches=branches, sparse=ODD))
    s.close()
    again = Store.open(work)
    try:
        assert again.config.remotes == remotes
        assert again.config.branches == branches
        assert again.config.sparse == ODD
        assert again.config.remote == "a.b"
    finally:
        again.close()


def test_values_toml_cannot_hold_are_kept_as_text(tmp_path: Path) -> None:
    config = StoreConfig(remotes={"o": {"url": "u", "options": {"none": None, "path": Path("/x"),
                                                                "pair": (1, "a")}}})
    save_config(tmp_path / "config", config)
    options = load_config(tmp_path / "config").remotes["o"]["options"]
    assert options == {"none": "None", "path": "/x", "pair": [1, "a"]}


def test_the_file_keeps_its_comment_and_its_tables_in_order(tmp_path: Path) -> None:
    config = StoreConfig(remote="o", remotes={"o": {"url": "u"}}, sparse=["a"],
                         branches={"main": {"remote": "o", "merge": "refs/heads/main"}})
    text = config.to_toml()
    assert text.startswith("# objstore store configuration; see docs/format.md\n[store]\nformat = 1\n")
    heads = [line for line in text.splitlines() if line.startswith("[")]
    assert heads == ["[store]", "[chunking]", "[remote]", "[remotes.o]", "[worktree]", "[branch.main]"]
    assert tomllib.loads(text)["store"]["format"] == 1
    assert config.to_toml() == text  # the same config, the same bytes


@pytest.mark.parametrize("name", ODD[:-1])
def test_user_settings_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / "config.toml"
    values = {"user.name": name, "cache.rows": 123, "remote.default": "s3://b/" + name}
    userconfig.save(values, path)
    assert userconfig.load(path) == values


def test_the_quick_status_path_does_not_import_the_writer() -> None:
    code = ("import sys, objstore.quickstatus, objstore.quicktrack, objstore.config; "
            "print('tomli_w' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
