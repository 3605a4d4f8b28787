"""The README's recipes, run from the README text itself so that they cannot drift.

Every fenced code block of README.md is either run here or listed in ``NOT_RUN`` with the
reason; a block that is neither fails ``test_every_readme_block_is_run_or_listed``, so the
README cannot grow a recipe nobody runs. Bash blocks run with ``bash -e`` and Python blocks
with this venv's python, each in a temp folder holding what the block assumes, with the
venv's ``ds`` and ``python`` first on PATH. What cannot run on a test machine is replaced
through ``SUBSTITUTIONS``; each replacement must still match the README text, so a stale
entry fails instead of silently running something else. What a block assumes but the README
sets up in another section is run before it from ``PRELUDES``; checks of what the comments
claim are asserted on each command's output, or appended to a Python block's script.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import DS, read_tree, write

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(DS).parent  # the venv's ds and python

# A block is named by the heading above it and its place under that heading.
TOUR = ("Five-minute tour", 0)
EVERYDAY = ("Everyday commands (as in git and DVC)", 0)
SHARING = ("Sharing through storage you own", 0)
BUCKET = ("Data that already lives in a bucket", 0)
SDK = ("Scripting datasets: the ClearML-compatible SDK", 0)
SDK_CLI = ("Scripting datasets: the ClearML-compatible SDK", 1)
DSFS = ("Reading a version in place: `ds://` for pandas, pyarrow and PyTorch", 0)
TORCH = ("Reading a version in place: `ds://` for pandas, pyarrow and PyTorch", 1)
CI = ("In a CI pipeline", 0)

NOT_RUN = {
    ("Set up (one command)", 0): "it makes the venv this test runs in",
    ("Run the tests (one command)", 0): "it runs the suite this test belongs to",
    ("Looking at it: `ds ui`", 0): "a server that runs until Ctrl-C (tests/test_ui.py starts one)",
    ("Benchmarks", 0): "9 to 40 minutes a run; CI runs `python -m benchmarks.run --quick` itself",
    ("Reading a version in place: `ds://` for pandas, pyarrow and PyTorch", 2):
        "needs a Dask cluster; tests/test_dask_reads.py runs these reads on two worker processes",
    ("Reading a version in place: `ds://` for pandas, pyarrow and PyTorch", 3):
        "needs torch.distributed on several nodes; tests/test_dataset.py checks get_local_copy's parts",
}

# What cannot run on a test machine, block by block: (README text, what runs instead).
# {url}: the moto S3 server's bucket; {endpoint}: its address; {tmp}: the test's temp folder;
# {options}: moto's storage options as a Python dict. Credentials come from the environment
# (AWS_ACCESS_KEY_ID, ...), the way the README says credentials come.
SUBSTITUTIONS: dict[tuple[str, int], list[tuple[str, str]]] = {
    TOUR: [("/tmp/v1-copy", "{tmp}/v1-copy"),  # no writes outside the test's folder
           ("/tmp/csv-only", "{tmp}/csv-only")],
    SHARING: [("s3://my-bucket/datasets", "{url}"),
              ("http://minio:9000", "{endpoint}")],
    BUCKET: [("s3://raw-bucket/scans", "{bucket}"),
             ("--dask local:4", "--dask local:2")],  # the test machine's cores
    DSFS: [('"s3://bucket/datasets"', '"{url}"'),
           ('{"profile": "ml"}', "{options}")],  # no AWS profile on a test machine
    CI: [('pip install "objstore[s3]"', ": pip install skipped, the venv has the test extras"),
         ("s3://bucket/datasets", "{url}")],
    # CI's `python train.py`: a train.py stand-in is written into the job's folder (see the test).
}

# Set up before a block, because the README shows it in another section or leaves it to the reader.
PRELUDES = {
    EVERYDAY: "ds remote add origin ../remote   # `ds remote rename origin up` needs an origin\n"
              "printf '3,owl\\n' >> tables/labels.csv   # a change for `ds restore` to undo\n",
}


@dataclass(frozen=True)
class Block:
    section: str
    index: int
    lang: str
    text: str


def readme_blocks(text: str | None = None) -> dict[tuple[str, int], Block]:
    """Every fenced block of README.md (or of ``text``), named by its heading and place under it."""
    blocks: dict[tuple[str, int], Block] = {}
    section, lang, body, counts = "", None, [], {}
    for line in (README.read_text() if text is None else text).splitlines():
        if lang is None and line.startswith("```"):
            lang, body = line[3:].strip(), []
        elif lang is not None and line.strip() == "```":
            index = counts.get(section, 0)
            counts[section] = index + 1
            blocks[(section, index)] = Block(section, index, lang, "\n".join(body) + "\n")
            lang = None
        elif lang is not None:
            body.append(line)
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
    assert lang is None, "README.md has a code block that is never closed"
    return blocks


def recipe(key: tuple[str, int], **values: str) -> str:
    """A block's text with its substitutions applied; each must still match the README."""
    block = readme_blocks().get(key)
    assert block is not None, f"README.md has no code block {key}: update this test's block names"
    text = block.text
    for old, new in SUBSTITUTIONS.get(key, []):
        assert old in text, f"substitution {old!r} no longer matches README block {key}: update SUBSTITUTIONS"
        text = text.replace(old, new.format(**values))
    return text


RUN = {TOUR, EVERYDAY, SHARING, BUCKET, SDK, SDK_CLI, DSFS, TORCH, CI}


def unlisted(blocks: dict[tuple[str, int], Block]) -> list[tuple[str, int]]:
    """Blocks this file neither runs nor lists in NOT_RUN."""
    return [key for key in blocks if key not in RUN and key not in NOT_RUN]


def test_every_readme_block_is_run_or_listed() -> None:
    blocks = readme_blocks()
    unknown = unlisted(blocks)
    assert not unknown, (f"README code blocks neither run nor listed: {unknown}; run them in "
                         "tests/test_readme_recipes.py or list them in NOT_RUN with the reason")
    gone = [key for key in RUN | set(NOT_RUN) if key not in blocks]
    assert not gone, f"blocks named here are no longer in README.md: {gone}"
    assert {blocks[key].lang for key in RUN} <= {"bash", "python"}


def test_a_new_readme_block_is_caught_wherever_it_appears() -> None:
    text = README.read_text()
    new_section = text + "\n## Another recipe\n```bash\nds frobnicate\n```\n"
    assert unlisted(readme_blocks(new_section)) == [("Another recipe", 0)]
    tour_end = text.index("```\n", text.index("## Five-minute tour") + 25) + 4
    second_in_tour = text[:tour_end] + "```bash\nds frobnicate\n```\n" + text[tour_end:]
    assert unlisted(readme_blocks(second_in_tour)) == [("Five-minute tour", 1)]


# -- running blocks ---------------------------------------------------------------------------
def recipe_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a reader's shell: the venv first on PATH, config and caches in tmp."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DSSTORE_DIR", "DSSTORE_REMOTE", "DS_AUTHOR", "DSSTORE_CACHE_DIR")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", HOME=str(tmp / "home"),
               DS_CONFIG_HOME=str(tmp / "config"), XDG_CACHE_HOME=str(tmp / "cache"),
               XDG_DATA_HOME=str(tmp / "data"), XDG_CONFIG_HOME=str(tmp / "xdg-config"))
    (tmp / "home").mkdir(exist_ok=True)
    env.update(extra)
    return env


MARK = "@@@ "


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    """Run a script with ``bash -e``; (command, its stdout and stderr) for each command run."""
    trace = f"trap 'printf \"\\n{MARK}%s\\n\" \"$BASH_COMMAND\"' DEBUG\n"
    proc = subprocess.run(["bash", "-e", "-c", trace + script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, f"recipe failed ({proc.returncode}):\n{script}\n--- output:\n{proc.stdout}"
    steps = []
    for part in proc.stdout.split("\n" + MARK)[1:]:
        command, _, output = part.partition("\n")
        steps.append((command, output.strip("\n")))
    return steps


def ds(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The venv's ``ds`` in a recipe's environment (its config folder, not the user's)."""
    proc = subprocess.run([DS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ds {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return proc


def output_of(steps: list[tuple[str, str]], command: str) -> str:
    outputs = [out for cmd, out in steps if cmd == command]
    assert len(outputs) == 1, f"{command!r} ran {len(outputs)} times: {[cmd for cmd, _ in steps]}"
    return outputs[0]


def run_python(code: str, cwd: Path, env: dict[str, str]) -> str:
    """Run a Python block (plus the test's checks appended to it) as a script; its stdout."""
    script = cwd / "recipe.py"
    script.write_text(code)
    proc = subprocess.run([str(BIN / "python"), str(script)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"the recipe failed ({proc.returncode}):\n{code}\n--- stderr:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def aws_env(moto_s3) -> dict[str, str]:
    """Credentials and endpoint the libraries' usual way, pointing at the moto server."""
    return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": moto_s3.endpoint, "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


# -- the tour, the everyday commands and sharing, in the order a reader runs them -----------------
def test_readme_tour_everyday_commands_and_sharing_run_as_written(tmp_path: Path, moto_s3, aws_env) -> None:
    env = recipe_env(tmp_path, **aws_env)
    tour = run_bash(recipe(TOUR, tmp=str(tmp_path)), tmp_path, env)
    demo = tmp_path / "demo"
    check_tour(tour, demo, tmp_path, env)

    everyday = run_bash(PRELUDES[EVERYDAY] + recipe(EVERYDAY), demo, env)
    check_everyday(everyday, demo, tmp_path, env)

    url = f"s3://{moto_s3.new_bucket()}/datasets"
    sharing = run_bash(recipe(SHARING, url=url, endpoint=moto_s3.endpoint), demo, env)
    check_sharing(sharing, demo, env)

    import s3fs

    scans = {f"week12/{i}.png": bytes([i]) * (1000 + i) for i in range(30)}
    source = f"{moto_s3.new_bucket()}/scans"
    s3fs.S3FileSystem(**moto_s3.options).pipe({f"{source}/{k}": v for k, v in scans.items()})
    steps = run_bash(recipe(BUCKET, bucket=f"s3://{source}"), demo, env)
    added = output_of(steps, f"ds add s3://{source} --to scans")
    assert "Staged 30 file(s)" in added and "scans/ is not checked out" in added
    assert not (demo / "scans").exists()  # versioned, not checked out
    status = json.loads(ds("status", "--json", cwd=demo, env=env).stdout)
    assert not [p for key in ("added", "removed", "modified") for p in status[key] if p.startswith("scans/")]
    pushed = ds("log", "--oneline", "-n", "1", "origin/main", cwd=demo, env=env).stdout
    assert pushed == ds("log", "--oneline", "-n", "1", cwd=demo, env=env).stdout  # the push went
    copy = read_tree(demo / "scans-copy")
    assert {k: v for k, (v, _x) in copy.items()} == {f"scans/{k}": v for k, v in scans.items()}


def check_tour(steps: list[tuple[str, str]], demo: Path, tmp: Path, env: dict[str, str]) -> None:
    """The claims the tour's comments make."""
    assert (demo / ".dsstore").is_dir()
    first = output_of(steps, 'ds commit -m "first version"')
    assert re.fullmatch(r"[0-9a-f]{40}", first), first  # prints the version id
    status = json.loads(output_of(steps, "ds status --json"))
    assert status["modified"] == ["tables/labels.csv"]  # the keys the comment names, and the move:
    moved = {"from": "images/cat.jpg", "to": "images/cat-1.jpg"} in status.get("renamed", [])
    assert moved or (status["added"], status["removed"]) == (["images/cat-1.jpg"], ["images/cat.jpg"]), status
    graph = output_of(steps, 'ds log --graph').splitlines()
    assert "more labels" in graph[0] and "first version" in graph[1]  # newest first
    diff = output_of(steps, "ds diff HEAD~1 HEAD").splitlines()
    assert any(re.fullmatch(r"M\s+tables/labels\.csv", line) for line in diff), diff
    assert any(re.fullmatch(r"R\s+images/cat\.jpg -> images/cat-1\.jpg", line) for line in diff), diff
    back = output_of(steps, "ds checkout v1")
    assert "detached" in back and "ds switch -c" in back  # and says how to keep work made on it
    assert "Switched to a new branch 'experiment'" in output_of(steps, "ds switch -c experiment")
    copy = read_tree(tmp / "v1-copy")
    assert sorted(copy) == ["images/cat.jpg", "tables/labels.csv"]
    assert copy["tables/labels.csv"][0] == b"id,label\n1,cat\n"  # v1, as plain writable files
    assert os.access(tmp / "v1-copy/tables/labels.csv", os.W_OK)
    assert sorted(read_tree(tmp / "csv-only")) == ["tables/labels.csv"]
    assert output_of(steps, "ds fsck --read-data").endswith("OK")
    assert "root version" in output_of(steps, 'ds squash HEAD -m "one root"')
    assert ds("log", "--oneline", cwd=demo, env=env).stdout.count("\n") == 1  # a single root version
    old = ds("log", "--oneline", "experiment", cwd=demo, env=env).stdout
    assert old.count("\n") == 2  # the old lineage stays on its branch
    ds("get", first, str(tmp / "first-after-gc"), cwd=demo, env=env)  # ds get ID still works after gc
    assert output_of(steps, "ds gc --prune-reflog-older-than now").startswith("gc freed 0 bytes")  # nothing
    assert read_tree(demo) == {"images/cat-1.jpg": ((demo / "images/cat-1.jpg").read_bytes(), False),
                               "tables/labels.csv": (b"id,label\n1,cat\n2,dog\n", False)}


def check_everyday(steps: list[tuple[str, str]], demo: Path, tmp: Path, env: dict[str, str]) -> None:
    assert output_of(steps, "ds ls").splitlines() == ["images/", "tables/"]  # folders end with /
    listed = output_of(steps, "ds ls v1 tables -r -l").split()
    assert listed == ["file", "15", "tables/labels.csv"]  # kind, size, path
    assert "one root" in output_of(steps, "ds log --oneline -- tables/labels.csv")
    # the prelude's '3,owl' was undone by `restore`; `restore --source v1` brought v1's labels back
    assert (demo / "tables/labels.csv").read_text() == "id,label\n1,cat\n"
    assert "Unstaged" in output_of(steps, "ds restore --staged tables")
    assert not (demo / "images").exists() and (demo / "pictures/cat-1.jpg").is_file()
    assert "Deleted tag v1" in output_of(steps, "ds tag -d v1")
    assert "logical" in output_of(steps, "ds du") and "stored" in output_of(steps, "ds du")
    assert ds("remote", "list", cwd=demo, env=env).stdout.split()[:2] == ["*", "up"]  # origin, renamed
    assert ds("config", "--global", "user.name", cwd=demo, env=env).stdout.strip() == "Data Team"
    assert (tmp / "config").is_dir()  # --global went to DS_CONFIG_HOME, not the user's real config
    assert ds("config", "store.zstd_level", cwd=demo, env=env).stdout.strip() == "9"


def check_sharing(steps: list[tuple[str, str]], demo: Path, env: dict[str, str]) -> None:
    status = json.loads(ds("status", "--json", cwd=demo, env=env).stdout)
    assert status["branch"] == "main" and status["upstream"]  # push -u made origin/main its upstream
    work, part = demo / "work", demo / "part"
    head = ds("log", "--oneline", cwd=demo, env=env).stdout
    assert ds("log", "--oneline", cwd=work, env=env).stdout.split()[0] == head.split()[0]
    assert sorted(read_tree(work)) == ["images/cat-1.jpg", "tables/labels.csv"]
    assert sorted(read_tree(part)) == ["tables/labels.csv"]  # sparse: only those bytes
    cloned = json.loads(ds("status", "--json", cwd=work, env=env).stdout)
    assert cloned["branch"] == "main"  # on origin's branch


# -- the SDK ------------------------------------------------------------------------------------
def make_images(folder: Path, count: int, size: tuple[int, int] = (24, 16)) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"cat{i}.jpg"
        Image.new("RGB", size, (40 * i % 256, 100, 200 - i)).save(path)
        paths.append(path)
    return paths


SDK_CHECKS = """
# -- checks appended by tests/test_readme_recipes.py --
from pathlib import Path
assert sorted(p.name for p in Path(path).iterdir()) == ["cat0.jpg", "cat1.jpg", "cat2.jpg"]
assert child.version == "1.0.1" and latest.id == child.id and latest.version == "1.0.1"
assert len(latest.list_files()) == 3
assert sorted(p.name for p in Path("work/cats").iterdir()) == ["cat0.jpg", "cat1.jpg", "cat2.jpg"]
print("CHECKED", ds.id, child.id)
"""


def test_readme_sdk_example_and_its_cli_twin_run_as_written(tmp_path: Path) -> None:
    env = recipe_env(tmp_path, DSSTORE_DIR=str(tmp_path / ".dsstore"))
    make_images(tmp_path / "images", 3)
    out = run_python(recipe(SDK) + SDK_CHECKS, tmp_path, env)
    printed, checked = out.splitlines()[-2:]
    first, child = checked.split()[1:]
    assert printed.startswith("[] {") and f"'{child}': ['{first}']" in printed  # the lineage

    steps = run_bash(recipe(SDK_CLI), tmp_path, env)
    listed = output_of(steps, "ds dataset list --project vision --name cats")
    assert all(f"cat{i}.jpg" in listed for i in range(3)), listed
    # the CLI's version landed in the same store as the SDK's: three versions of vision/cats
    count = "import objstore; print(len(objstore.Dataset.list_datasets(dataset_project='vision')))"
    assert run_python(count, tmp_path, env).strip() == "3"


# -- ds:// for pandas, pyarrow and PyTorch --------------------------------------------------------
VERSIONS = 4  # 1.0.0 .. 1.0.3: the recipe reads 1.0.2 and latest, which must differ


def make_cats(tmp: Path, monkeypatch, remote: str | None = None) -> None:
    """vision/cats in tmp/.dsstore, the dataset the ds:// recipes read: versions 1.0.0 .. 1.0.3
    of img/ (jpgs) and tables/ (labels.csv, boxes.parquet), each uploaded to ``remote`` if given."""
    import pandas as pd

    from objstore import Dataset

    monkeypatch.setenv("DSSTORE_DIR", str(tmp / ".dsstore"))
    if remote:
        monkeypatch.setenv("DSSTORE_REMOTE", remote)
    src, parent = tmp / "cats-src", None
    for v in range(VERSIONS):
        make_images(src / "img", 3 + v)
        rows = range(v + 1)
        (src / "tables").mkdir(exist_ok=True)
        pd.DataFrame({"id": list(rows), "label": ["cat"] * len(rows)}).to_csv(src / "tables/labels.csv",
                                                                            index=False)
        pd.DataFrame({"id": list(rows), "x": [0.5] * len(rows)}).to_parquet(src / "tables/boxes.parquet")
        dataset = Dataset.create(dataset_name="cats", dataset_project="vision",
                                 parent_datasets=[parent] if parent else None)
        dataset.sync_folder(src)
        dataset.upload(show_progress=False)
        dataset.finalize()
        assert dataset.version == f"1.0.{v}"
        parent = dataset.id
    monkeypatch.delenv("DSSTORE_DIR")
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)


DSFS_CHECKS = """
# -- checks appended by tests/test_readme_recipes.py --
assert len(df) == {versions}, df  # the last read: labels.csv of latest, from the remote
assert table.num_rows == 3 and table.column_names[:2] == ["id", "x"], table  # boxes.parquet of 1.0.2
assert len(pd.read_csv("ds://vision/cats@1.0.2/tables/labels.csv")) == 3
print(fs.ls("ds://vision/cats", detail=False), flush=True)
# pyarrow's I/O threads may still drop references to Python file objects while the interpreter
# shuts down, which aborts the process now and then ("terminate called without an active
# exception", apache/arrow#34314) after every check above passed: end without the teardown.
import os; os._exit(0)
"""


def test_readme_pandas_and_pyarrow_recipe_runs_as_written(tmp_path: Path, moto_s3, aws_env,
                                                          monkeypatch) -> None:
    url = f"s3://{moto_s3.new_bucket()}/datasets"
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    make_cats(tmp_path, monkeypatch, remote=url)
    env = recipe_env(tmp_path, **aws_env, DSSTORE_DIR=str(tmp_path / ".dsstore"),
                     DSSTORE_CACHE_DIR=str(tmp_path / "dsfs-cache"))
    code = recipe(DSFS, url=url, options=repr(moto_s3.options)) + DSFS_CHECKS.format(versions=VERSIONS)
    out = run_python(code, tmp_path, env)
    assert out.splitlines()[-1] == str([f"vision/cats@1.0.{v}" for v in range(VERSIONS)])
    assert any((tmp_path / "dsfs-cache").rglob("config")), "the remote read made no private cache store"


TORCH_CHECKS = """
# -- checks appended by tests/test_readme_recipes.py --
from pathlib import Path
import numpy as np, torch
expected = [np.array(Image.open(p).convert("RGB")) for p in sorted(Path("{src}").iterdir())]
batches = list(loader)
assert len(batches) == len(expected) == {count}
for batch, image in zip(batches, expected):
    assert batch.dtype == torch.uint8 and batch.shape == (1, 3, *image.shape[:2]), batch.shape
    assert torch.equal(batch[0].permute(1, 2, 0), torch.from_numpy(image))
print("ITERATED", len(batches))
"""


def require_torch() -> None:
    """Skip without PyTorch, unless CI (DS_REQUIRE_ALL_BACKENDS) promised every backend."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("DS_REQUIRE_ALL_BACKENDS"):
            pytest.fail("torch is not installed (.ci/run installs it: pip install torch==2.13.0)")
        pytest.skip("torch is not installed: the README's PyTorch recipe needs pip install torch==2.13.0")


def test_without_torch_the_pytorch_recipe_skips_unless_ci_requires_every_backend(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    monkeypatch.delenv("DS_REQUIRE_ALL_BACKENDS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="torch is not installed"):
        require_torch()
    monkeypatch.setenv("DS_REQUIRE_ALL_BACKENDS", "1")
    with pytest.raises(pytest.fail.Exception, match="torch is not installed"):
        require_torch()


def test_readme_pytorch_recipe_iterates(tmp_path: Path, monkeypatch) -> None:
    """Run as written, num_workers=4 included (forked workers reopen the store)."""
    require_torch()
    make_cats(tmp_path, monkeypatch)
    env = recipe_env(tmp_path, DSSTORE_DIR=str(tmp_path / ".dsstore"))
    checks = TORCH_CHECKS.format(src=tmp_path / "cats-src" / "img", count=3 + VERSIONS - 1)
    code = recipe(TORCH) + checks
    assert run_python(code, tmp_path, env).splitlines()[-1] == f"ITERATED {3 + VERSIONS - 1}"


# -- the CI recipe ------------------------------------------------------------------------------
def ci_push_job() -> str:
    """The producing job's one-liner, from the prose under the CI recipe."""
    text = README.read_text()
    section = text[text.index("### In a CI pipeline"):]
    job = re.search(r"`(ds add \. && ds commit[^`]*&& ds push)`", section.replace("\n", " "))
    assert job is not None, "the README's CI section no longer shows the push job"
    return job.group(1)


TRAIN_STAND_IN = """\
import sys, pathlib
root = pathlib.Path(sys.argv[sys.argv.index('--data') + 1])
assert (root / 'a.csv').read_text() == '1\\n'
assert not (root.parent / 'train' / 'b.csv').exists()
"""


def test_readme_ci_recipe_runs_as_written(tmp_path: Path, moto_s3, aws_env) -> None:
    env = recipe_env(tmp_path, **aws_env, CI_COMMIT_SHA="0123abcd")
    url = f"s3://{moto_s3.new_bucket()}/datasets"
    src = tmp_path / "producer"
    ds("init", str(src), cwd=tmp_path, env=env)
    write(src, "val/a.csv", "1\n")
    write(src, "train/b.csv", "2\n")
    ds("add", "-A", cwd=src, env=env)
    ds("commit", "-m", "first data", cwd=src, env=env)
    ds("tag", "v1.2", cwd=src, env=env)
    options = [x for o in moto_s3.options.items() for x in ("-o", "=".join(o))]
    ds("remote", "add", "origin", url, *options, cwd=src, env=env)
    ds("push", "-u", "origin", "main", "--tags", cwd=src, env=env)

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "train.py").write_text(TRAIN_STAND_IN)  # stands in for the training script
    steps = run_bash(recipe(CI, url=url), job_dir, env)
    assert [cmd.split()[0] for cmd, _ in steps] == [":", "ds", "ds", "python"]
    assert sorted(read_tree(job_dir / "data")) == ["val/a.csv"]  # only what the job reads

    # the producing job: a clone of the branch, new data, the README's one-liner
    run_bash(f"ds clone {url} out", job_dir, env)
    write(job_dir / "out", "val/c.csv", "3\n")
    run_bash(ci_push_job(), job_dir / "out", env)
    log = ds("log", "--oneline", "origin/main", cwd=job_dir / "out", env=env).stdout
    assert log.splitlines()[0].endswith("0123abcd")
    ds("pull", cwd=src, env=env)
    assert (src / "val/c.csv").read_text() == "3\n"

