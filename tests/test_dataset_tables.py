"""The tables of `ds dataset list` and `ds dataset search`, as a script reads them from a pipe.

One row per line, ``" | "`` between cells, every separator at the same display column (a CJK
character takes two), a rule of dashes as wide as the header, no colour codes and no
wrapping, however long a cell is or whatever the terminal settings in the environment say.
"""

from __future__ import annotations

import os
import subprocess
import unicodedata

import pytest

from objstore import Dataset

from .conftest import DS, write

LONG_PROJECT = "a-very-long-project-name/with/sub/projects/here"
CJK = "猫の写真 データ"
TAGS = [f"tag{i}" for i in range(20)]
LONG_NAME = "n" * 300
MARKUP = "[bold]b[/bold] :smile:"
DEEP = f"{'d' * 100}/{'e' * 100}/{'f' * 96}.bin"  # a 302-character file name
SEARCH_HEADER = f"{'project':16} | {'name':32} | {'version':19} | {'tags':19} | {'created':32} | {'id':32}"
LIST_HEADER = f"{'file name':64} | {'size':10} | {'hash':64}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Datasets with long, spaced, CJK, markup-like names and many tags; the env that reaches them."""
    root = tmp_path_factory.mktemp("tables")
    env = {k: v for k, v in os.environ.items() if k != "DSSTORE_REMOTE"}
    env |= {"DSSTORE_DIR": str(root / ".dsstore"),
            # a terminal's settings in the environment: piped output must still be plain and whole
            "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "40"}
    data = root / "data"
    write(data, "a.csv", "1,2\n")
    write(data, "with space.txt", "hello")
    write(data, "sub/猫の写真.jpg", b"x" * 1234)
    write(data, DEEP, b"y" * 12345)
    write(data, f"{MARKUP}.txt", "m")
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSSTORE_DIR", env["DSSTORE_DIR"])
        mp.delenv("DSSTORE_REMOTE", raising=False)
        for key, kw in {
            "files": dict(dataset_project=LONG_PROJECT, dataset_name="name with spaces", dataset_tags=TAGS),
            "cjk": dict(dataset_project="p", dataset_name=CJK, dataset_tags=["写真"]),
            "long": dict(dataset_project="p", dataset_name=LONG_NAME,
                         dataset_version="1.2.3-rc.a-long-version-string"),
            "markup": dict(dataset_project="p", dataset_name=MARKUP),
            "short": dict(dataset_project="q", dataset_name="s"),
        }.items():
            ds = Dataset.create(**kw)
            if key == "files":
                ds.add_files(str(data))
            ds.finalize()
            ids[key] = ds.id
        hashes = {p: str(e.hash) for p, e in Dataset.get(dataset_id=ids["files"]).file_entries_dict.items()}
    return {"env": env, "ids": ids, "cwd": root, "hashes": hashes}


def dataset(store: dict, *args: str) -> str:
    proc = subprocess.run([DS, "dataset", *args], env=store["env"], cwd=store["cwd"], capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "\x1b" not in out  # no colour or cursor codes in a pipe
    return out


def width(text: str) -> int:
    """Display width on a terminal: wide (CJK) characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def bars(line: str) -> list[int]:
    """The display columns at which the line's " | " separators start."""
    cells = line.split(" | ")
    return [sum(width(c) + 3 for c in cells[:i]) - 3 for i in range(1, len(cells))]


def assert_table(lines: list[str], columns: int) -> list[list[str]]:
    """An aligned table of ``columns`` columns (header, dashes, rows); the rows' cells."""
    header, rule, *rows = lines
    assert set(rule) == {"-"} and len(rule) == len(header)
    assert all(len(bars(r)) == columns - 1 and bars(r) == bars(header) for r in rows), lines
    assert all(width(r) == len(header) for r in rows)  # the last column padded as the header is
    return [r.split(" | ") for r in rows]


def test_search_rows_whole_and_aligned(store: dict) -> None:
    lines = dataset(store, "search").splitlines()
    assert lines[0] == "Search datasets"
    rows = assert_table(lines[1:], 6)
    ids = store["ids"]
    assert sorted([c.strip() for c in r[:4]] + [r[5].strip()] for r in rows) == sorted([
        [LONG_PROJECT, "name with spaces", "1.0.0", ", ".join(f"'{t}'" for t in TAGS), ids["files"]],
        ["p", CJK, "1.0.0", "'写真'", ids["cjk"]],
        ["p", LONG_NAME, "1.2.3-rc.a-long-version-string", "", ids["long"]],
        ["p", MARKUP, "1.0.0", "", ids["markup"]],
        ["q", "s", "1.0.0", "", ids["short"]]])
    # each column as wide as its widest cell: the long project, name, version and tags set theirs
    header = lines[1].split(" | ")
    assert [c.strip() for c in header] == ["project", "name", "version", "tags", "created", "id"]
    tags = ", ".join(f"'{t}'" for t in TAGS)
    assert [len(c) for c in header] == [len(LONG_PROJECT), 300, 30, len(tags), 32, 32]


def test_search_with_short_cells_keeps_clearml_data_widths(store: dict) -> None:
    lines = dataset(store, "search", "--project", "q").splitlines()
    assert lines[1] == SEARCH_HEADER and lines[2] == "-" * len(SEARCH_HEADER)
    assert lines[3].startswith(f"{'q':16} | {'s':32} | {'1.0.0':19} | {'':19} | ")
    assert lines[3].endswith(f" | {store['ids']['short']}") and len(lines) == 4


def test_search_finding_nothing_prints_the_header(store: dict) -> None:
    out = dataset(store, "search", "--project", "nowhere")
    assert out == f"Search datasets\n{SEARCH_HEADER}\n{'-' * len(SEARCH_HEADER)}\n"


def test_list_rows_whole_and_aligned(store: dict) -> None:
    lines = dataset(store, "list", "--id", store["ids"]["files"]).splitlines()
    assert lines[:2] == [f"List dataset content: {store['ids']['files']}", "Listing dataset content"]
    assert lines[-1] == "Total 5 files, 13589 bytes"
    rows = assert_table(lines[2:-1], 3)
    by_name = {r[0].rstrip(): r for r in rows}
    assert sorted(by_name) == sorted(["a.csv", "with space.txt", "sub/猫の写真.jpg", DEEP, f"{MARKUP}.txt"])
    assert lines[2].split(" | ")[:2] == [f"{'file name':{len(DEEP)}}", f"{'size':10}"]  # header left-aligned
    assert by_name[DEEP][1] == f"{12345:10,}" and by_name["sub/猫の写真.jpg"][1] == f"{1234:10,}"  # right
    assert {name: r[2] for name, r in by_name.items()} == {p: f"{h:64}" for p, h in store["hashes"].items()}


def test_list_with_short_names_keeps_clearml_data_widths(store: dict) -> None:
    lines = dataset(store, "list", "--id", store["ids"]["files"], "--filter", "a.csv").splitlines()
    assert lines[2] == LIST_HEADER and lines[3] == "-" * len(LIST_HEADER)
    assert lines[4].startswith(f"{'a.csv':64} | {4:10,} | ") and len(lines[4]) == len(LIST_HEADER)


def test_listing_an_empty_dataset_prints_the_header(store: dict) -> None:
    out = dataset(store, "list", "--id", store["ids"]["cjk"])
    assert out.splitlines()[1:] == ["Listing dataset content", LIST_HEADER, "-" * len(LIST_HEADER),
                                    "Total 0 files, 0 bytes"]


def test_a_terminal_gets_the_same_lines(store: dict) -> None:
    """On a terminal the lines are those of a pipe: plain, and not fitted to the terminal's
    width."""
    import pty

    master, terminal = pty.openpty()
    proc = subprocess.Popen([DS, "dataset", "search"], env=store["env"], cwd=store["cwd"], stdout=terminal,
                            stderr=subprocess.DEVNULL)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    assert "\x1b[" not in shown
    assert shown == dataset(store, "search")


def _rich_table(columns, rows, right=None) -> str:
    """The same table drawn by ``rich.table.Table`` (no edges, " | " between columns, dashes
    under the header): what ``ds dataset`` prints must be exactly these lines."""
    import io

    from rich.box import Box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    bars = Box("    \n  | \n----\n  | \n    \n    \n  | \n    \n", ascii=True)
    table = Table(box=bars, show_edge=False, pad_edge=False)
    for i, (name, width) in enumerate(columns):
        table.add_column(Text(name, justify="left"), min_width=width, no_wrap=True,
                         justify="right" if i == right else "left")
    for row in rows:
        table.add_row(*map(Text, row))
    buf = io.StringIO()
    Console(file=buf, width=10**6, soft_wrap=True, force_terminal=False).print(table)
    return buf.getvalue()


@pytest.mark.parametrize("right", [1, None])
def test_the_tables_are_rich_tables_drawn_without_building_one(right):
    """The lines are padded by ``ds`` itself (a 100,000-file listing through rich's table
    took 30 s), by display width, and must be exactly those rich's table draws."""
    import contextlib
    import io

    from objstore_cli import dataset_cmd
    from rich.cells import cell_len

    columns = (("file name", 64), ("size", 10), ("hash", 64))
    rows = [("a/b.txt", "1,234", "ab" * 32), ("猫/写真.jpg", "123,456,789", "cd" * 32),
            ("x" * 302, "0", "ef" * 32), ("[bold]b[/bold] :smile:", "12", "0" * 64)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dataset_cmd._print_lines(columns, rows, right=right)
    assert buf.getvalue() == _rich_table(columns, rows, right)
    cjk = buf.getvalue().splitlines()[3]
    assert cjk.startswith("猫/写真.jpg ")
    assert cell_len(cjk.split(" | ")[0]) == 302  # padded by display width to the widest name
