"""A clone you can push from: upstreams, and push / pull / clone / status as git users expect.

Everything here runs the installed `ds` on a folder remote and on S3 (a moto server).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DS, ds, read_tree, write


@pytest.fixture(params=["folder", "s3"])
def remote(request, tmp_path: Path) -> tuple[str, list[str]]:
    """(URL, the `-o key=value` options `ds remote add` and `ds clone` need) of an empty remote."""
    if request.param == "folder":
        return str(tmp_path / "remote"), []
    server = request.getfixturevalue("moto_s3")
    opts = [f"endpoint_url={server.endpoint}", "key=test", "secret=test"]
    return f"s3://{server.new_bucket()}/data", [x for o in opts for x in ("-o", o)]


def full_status(cwd: Path, *args: str) -> list[str]:
    """`ds status` lines through the command itself (the console script answers a plain
    `ds status` of a clean folder before loading the commands)."""
    code = "import sys; from objstore_cli.app import main; sys.argv = ['ds', 'status', *sys.argv[1:]]; main()"
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def status_json(cwd: Path) -> dict:
    return json.loads(ds("status", "--json", cwd=cwd).stdout)


def fails(*args: str, cwd: Path) -> str:
    """The one error line of a command that must fail with exit 1."""
    proc = ds(*args, cwd=cwd, check=False)
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


UP_TO_DATE = ["On branch main", "Your branch is up to date with 'origin/main'."]


def test_branches_merge_push_clone_push_pull_tags(tmp_path: Path, remote) -> None:
    url, opts = remote
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ds("init", str(a), cwd=tmp_path)
    write(a, "data/x.csv", "1\n")
    write(a, "notes.txt", "n1")
    ds("add", ".", cwd=a)
    v1 = ds("commit", "-m", "v1", cwd=a).stdout.strip()
    ds("branch", "feature", cwd=a)
    ds("switch", "feature", cwd=a)
    write(a, "data/y.csv", "2\n")
    ds("commit", "-a", "-m", "feature work", cwd=a)
    ds("switch", "main", cwd=a)
    write(a, "notes.txt", "n2")
    ds("commit", "-a", "-m", "main work", cwd=a)
    ds("merge", "feature", cwd=a)
    assert sorted(read_tree(a)) == ["data/x.csv", "data/y.csv", "notes.txt"]
    ds("remote", "add", "origin", url, *opts, cwd=a)

    pushed = ds("push", "-u", "origin", "main", cwd=a).stderr.splitlines()
    assert re.fullmatch(r"Pushed 4 versions, 4 files, [\d.]+ (B|KiB) to origin in \d+\.\d s", pushed[0])
    assert pushed[1:] == [f"To {url}", " * [new branch]  main -> main",
                          "branch 'main' set up to track 'origin/main'."]
    assert full_status(a)[:2] == UP_TO_DATE
    assert status_json(a)["branch"] == "main"

    cloned = ds("clone", url, str(b), *opts, cwd=tmp_path).stderr.splitlines()
    assert re.fullmatch(r"Cloned 4 versions, 3 files, [\d.]+ KiB from \S+ in \d+\.\d s", cloned[0])
    assert cloned[1:] == ["Checked out branch 'main' into " + str(b),
                          "branch 'main' set up to track 'origin/main'."]
    assert read_tree(b) == read_tree(a)
    assert full_status(b)[:2] == UP_TO_DATE
    write(b, "data/z.csv", "3\n")
    ds("add", "data/z.csv", cwd=b)
    from_b = ds("commit", "-m", "from b", cwd=b).stdout.strip()
    assert ds("status", cwd=b).stdout.splitlines()[:2] == [
        "On branch main", "Your branch is 1 version ahead of 'origin/main' (`ds push` sends them)."]
    pushed = ds("push", cwd=b).stderr.splitlines()  # no arguments: the upstream
    assert pushed[0].startswith("Pushed 1 version, 1 file, ")
    assert re.fullmatch(rf"   [0-9a-f]{{12}}\.\.{from_b[:12]}  main -> main", pushed[2])
    assert ds("push", cwd=b).stderr == "Everything up-to-date\n"
    assert full_status(b)[:2] == UP_TO_DATE

    pulled = ds("pull", cwd=a).stderr.splitlines()
    assert pulled[0].startswith("Pulled 1 version, 1 file, ")
    assert pulled[-1] == f"Fast-forward main to {from_b[:12]} (1 file changed)"
    assert read_tree(a) == read_tree(b) and full_status(a)[:2] == UP_TO_DATE

    log = ds("log", "--oneline", "--", "notes.txt", cwd=a).stdout
    assert "main work" in log and "v1" in log and "feature work" not in log and "from b" not in log
    assert ds("log", "--oneline", "--", "data/z.csv", cwd=a).stdout.count("\n") == 1
    assert ds("ls", cwd=a).stdout.split() == ["data/", "notes.txt"]
    write(a, "notes.txt", "n3")
    ds("add", "notes.txt", cwd=a)
    assert status_json(a)["staged"]["modified"] == ["notes.txt"]
    ds("restore", "--staged", "notes.txt", cwd=a)
    st = status_json(a)
    assert st["staged"]["modified"] == [] and st["modified"] == ["notes.txt"]
    assert (a / "notes.txt").read_text() == "n3"

    ds("tag", "v1", v1, cwd=a)
    ds("tag", "v2", cwd=a)
    ds("tag", "-d", "v2", cwd=a)
    pushed = ds("push", "--tags", cwd=a).stderr.splitlines()
    assert pushed[1:] == [f"To {url}", " * [new tag]  v1 -> v1"]
    assert ds("push", "--tags", cwd=a).stderr == "Everything up-to-date\n"
    cloned = ds("clone", url, str(c), "--rev", "v1", *opts, cwd=tmp_path).stderr.splitlines()
    assert cloned[1].startswith(f"HEAD detached at {v1[:12]} (v1) in {c}")
    assert read_tree(c) == {"data/x.csv": (b"1\n", False), "notes.txt": (b"n1", False)}
    assert status_json(c)["branch"] is None
    assert full_status(c)[0].startswith(f"HEAD detached at {v1[:12]}")


README = Path(__file__).resolve().parent.parent / "README.md"


def _ci_recipe() -> tuple[list[str], str]:
    """The README's CI recipe: the commands of its bash block, and the push job's one-liner."""
    text = README.read_text()
    section = text[text.index("### In a CI pipeline"):]
    block = section[section.index("```bash\n") + 8: section.index("```\n", section.index("```bash\n") + 8)]
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    job = re.search(r"`(ds add \. && ds commit[^`]*&& ds push)`", section.replace("\n", " "))
    assert job is not None, "the README's CI section no longer shows the push job"
    return commands, job.group(1)


def test_readme_ci_recipe_runs_as_written(tmp_path: Path, moto_s3, monkeypatch) -> None:
    commands, job = _ci_recipe()
    assert commands[0].startswith("pip install") and commands[1].startswith("ds clone s3://bucket/datasets")
    bucket = moto_s3.new_bucket()
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_ENDPOINT_URL": moto_s3.endpoint, "CI_COMMIT_SHA": "0123abcd"}.items():
        monkeypatch.setenv(key, value)  # credentials the libraries' usual way, as in CI
    url = f"s3://{bucket}/datasets"
    src = tmp_path / "producer"
    ds("init", str(src), cwd=tmp_path)
    write(src, "val/a.csv", "1\n")
    write(src, "train/b.csv", "2\n")
    ds("commit", "-a", "-m", "first data", cwd=src)
    ds("tag", "v1.2", cwd=src)
    ds("remote", "add", "origin", url, cwd=src)
    ds("push", "-u", "origin", "main", "--tags", cwd=src)

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "train.py").write_text(  # stands in for the training script: reads what it was given
        "import sys, pathlib\nroot = pathlib.Path(sys.argv[sys.argv.index('--data') + 1])\n"
        "assert (root / 'a.csv').read_text() == '1\\n'\n"
        "assert not (root.parent / 'train' / 'b.csv').exists()\n")

    def sh(command: str, cwd: Path) -> None:
        command = command.replace("s3://bucket/datasets", url)
        if command.startswith("python "):
            command = command.replace("python ", f"{sys.executable} ", 1)
        env = dict(os.environ, PATH=f"{Path(DS).parent}{os.pathsep}{os.environ['PATH']}")
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)

    for command in commands[1:]:  # the pip line is the environment this test already runs in
        sh(command, job_dir)
    assert sorted(read_tree(job_dir / "data")) == ["val/a.csv"]

    # the producing job: a clone of the branch, new data, the README's one-liner
    ds("clone", url, "out", cwd=job_dir)
    write(job_dir / "out", "val/c.csv", "3\n")
    sh(job, job_dir / "out")
    log = ds("log", "--oneline", "origin/main", cwd=job_dir / "out").stdout
    assert log.splitlines()[0].endswith("0123abcd")
    ds("pull", cwd=src)
    assert (src / "val/c.csv").read_text() == "3\n"
