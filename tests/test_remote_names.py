"""ds remote rename / set-url: what hangs off a remote's name follows it."""

from __future__ import annotations

from pathlib import Path

from .conftest import ds, write


def _pushed(tmp_path: Path) -> tuple[Path, Path]:
    w, r = tmp_path / "w", tmp_path / "r"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    ds("remote", "add", "origin", str(r), cwd=w)
    ds("push", "-u", "origin", "main", cwd=w)
    return w, r


def test_rename_moves_refs_cache_upstream_and_default(tmp_path: Path) -> None:
    w, r = _pushed(tmp_path)
    head = ds("log", "--json", cwd=w).stdout
    ds("remote", "rename", "origin", "up", cwd=w)
    listing = ds("remote", "list", cwd=w).stdout
    assert "* up\t" in listing and "origin" not in listing
    assert (w / ".dsstore/remotes/up").is_dir() and not (w / ".dsstore/remotes/origin").exists()
    refs = ds("log", "up/main", "--json", cwd=w).stdout
    assert refs == head
    assert "'up/main'" in ds("status", cwd=w).stdout, "the upstream follows the rename"
    write(w, "a", "2")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    ds("push", cwd=w)
    assert "up to date with 'up/main'" in ds("status", cwd=w).stdout
    assert ds("fsck", cwd=w).returncode == 0


def test_rename_refuses_unknown_taken_and_bad_names(tmp_path: Path) -> None:
    w, r = _pushed(tmp_path)
    ds("remote", "add", "other", str(tmp_path / "r2"), cwd=w)
    for old, new, why in (("nope", "x", "no remote named"), ("origin", "other", "already exists"),
                          ("origin", "a/b", "not a valid remote name"), ("origin", "", "not a valid")):
        p = ds("remote", "rename", old, new, cwd=w, check=False)
        assert p.returncode == 1 and why in p.stderr, (old, new, p.stderr)
    assert "origin" in ds("remote", "list", cwd=w).stdout


def test_set_url_points_elsewhere_and_forgets_the_old_place(tmp_path: Path) -> None:
    w, r = _pushed(tmp_path)
    moved = tmp_path / "moved"
    r.rename(moved)
    p = ds("remote", "set-url", "origin", str(moved), cwd=w)
    assert str(moved) in p.stderr
    assert not (w / ".dsstore/remotes/origin").exists(), "the cache described the old place"
    ds("fetch", cwd=w)
    write(w, "a", "3")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v3", cwd=w)
    ds("push", cwd=w)
    assert "up to date with 'origin/main'" in ds("status", cwd=w).stdout
    bad = ds("remote", "set-url", "origin", "", cwd=w, check=False)
    assert bad.returncode == 1 and "Error" in bad.stderr


def test_a_url_with_a_slash_too_few_is_refused_not_made_a_folder(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    for args in (["remote", "add", "x", "s3:/bucket/data"], ["push", "s3:/bucket"],
                 ["clone", "gs:/bucket", str(tmp_path / "c")]):
        p = ds(*args, cwd=w, check=False)
        assert p.returncode == 1 and "did you mean" in p.stderr and "://" in p.stderr, (args, p.stderr)
    assert not (w / "s3:").exists() and not (tmp_path / "c").exists()
    for url, what in (("s3://", "bucket"), ("gs:///", "bucket"), ("az://", "container")):
        p = ds("remote", "add", "z", url, cwd=w, check=False)  # every request would fail on credentials
        assert p.returncode == 1 and f"names no {what}" in p.stderr and "://NAME" in p.stderr, url
    assert "z" not in ds("remote", cwd=w).stdout
    ds("remote", "add", "y", "../s3:/bucket", cwd=w)  # a folder of that name, asked for plainly
