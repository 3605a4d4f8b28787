"""ClearML fidelity: ``dataset._task`` (artifacts, user properties, parameters, the web page),
``get_logger()`` reports with images and media, typed metadata, and all of it in ``ds ui``.

Scripts here are written in the spirit of ClearML's dataset examples (urbansounds: artifacts,
debug images and audio on the dataset's task; metadata tables), fresh for this project.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from objstore import Dataset
from objstore.errors import DsError, FormatError
from objstore.store import Store

from .conftest import write
from .test_ui import request, running, snapshot


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "store" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    return store


def make(name: str = "sounds", project: str = "audio", **kw) -> Dataset:
    return Dataset.create(dataset_name=name, dataset_project=project, **kw)


def png(size=(8, 6), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


WAV_TYPE = mimetypes.guess_type("x.wav")[0]
WAV = (b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00D\xac\x00\x00\x88X\x01\x00"
       b"\x02\x00\x10\x00data\x00\x00\x00\x00")


def run_python(code: str, env_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter on the same store: what a later script sees."""
    env = dict(os.environ, DSSTORE_DIR=str(env_dir))
    env.pop("DSSTORE_REMOTE", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


# -- an urbansounds-style script, and a later process reading it back -------------------------
PRODUCER = """
    import io
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from PIL import Image

    from objstore import Dataset

    clips = Path("clips")
    (clips / "dog").mkdir(parents=True)
    (clips / "dog" / "bark.wav").write_bytes(WAV)
    (clips / "labels.csv").write_text("file,label\\ndog/bark.wav,dog\\n")
    dataset = Dataset.create(dataset_name="UrbanSounds example", dataset_project="datasets/urbansounds",
                             dataset_tags=["preprocessed"])
    dataset.add_files(clips)
    metadata = pd.DataFrame({"fold": [1, 2, 2], "label": ["dog", "siren", "drill"],
                             "duration": [0.5, 1.25, 3.0]}, index=pd.Index(["a", "b", "c"], name="clip"))
    dataset.set_metadata(metadata, metadata_name="sample metadata", ui_visible=True)
    dataset.set_metadata(np.arange(12, dtype=np.int16).reshape(3, 4), metadata_name="fold sizes")
    dataset._task.upload_artifact(name="class names", artifact_object={"0": "dog", "1": "siren"})
    dataset._task.upload_artifact(name="spectrogram", artifact_object=np.ones((4, 5), dtype=np.float32))
    dataset._task.upload_artifact(name="sample table", artifact_object=metadata, extension_name=".parquet")
    dataset._task.upload_artifact(name="labels", artifact_object="clips/labels.csv", metadata={"rows": 1})
    logger = dataset.get_logger()
    logger.report_image("spectrogram", "dog/bark.wav", iteration=0,
                        image=np.linspace(0, 1, 8 * 6 * 3).reshape(8, 6, 3))
    logger.report_image("spectrogram", "pil", iteration=1, image=Image.new("RGB", (5, 7), (0, 90, 200)))
    logger.report_media("audio", "dog/bark.wav", iteration=0, local_path="clips/dog/bark.wav")
    logger.report_table("metadata", "sample metadata", iteration=0, table_plot=metadata)
    dataset._task.set_user_properties(sample_rate="22050", clips={"value": 3, "description": "how many"})
    dataset.finalize()
    print(dataset.id)
""".replace("WAV", repr(WAV))

CONSUMER = """
    import json
    import sys

    import numpy as np
    import pandas as pd
    from PIL import Image

    from objstore import Dataset

    dataset = Dataset.get(dataset_project="datasets/urbansounds", dataset_name="UrbanSounds example")
    expected = pd.DataFrame({"fold": [1, 2, 2], "label": ["dog", "siren", "drill"],
                             "duration": [0.5, 1.25, 3.0]}, index=pd.Index(["a", "b", "c"], name="clip"))
    pd.testing.assert_frame_equal(dataset.get_metadata("sample metadata"), expected)
    sizes = dataset.get_metadata("fold sizes")
    assert sizes.dtype == np.int16 and sizes.shape == (3, 4) and sizes[2, 3] == 11
    artifacts = dataset._task.artifacts
    assert artifacts["class names"].get() == {"0": "dog", "1": "siren"}
    spec = artifacts["spectrogram"].get()
    assert spec.dtype == np.float32 and spec.shape == (4, 5)
    pd.testing.assert_frame_equal(artifacts["sample table"].get(), expected)
    labels = artifacts["labels"]
    assert labels.metadata == {"rows": "1"} and labels.type == "custom"
    assert open(labels.get_local_copy()).read() == "file,label\\ndog/bark.wav,dog\\n"
    pd.testing.assert_frame_equal(artifacts["sample metadata"].get(), expected)  # metadata is an artifact
    reports = dataset.get_metadata("reports")
    kinds = [(r["kind"], r["series"]) for r in reports]
    # set_metadata(DataFrame, ui_visible=True) shows it as a table, as ClearML does
    assert kinds == [("table", "Dataset Metadata"), ("image", "dog/bark.wav"), ("image", "pil"),
                     ("media", "dog/bark.wav"), ("table", "sample metadata")], kinds
    assert reports[0]["rows"] == reports[4]["rows"]
    assert reports[4]["rows"][0] == ["clip", "fold", "label", "duration"]
    assert reports[4]["rows"][1] == ["a", 1, "dog", 0.5]
    props = dataset._task.get_user_properties()
    assert props["clips"] == {"name": "clips", "value": "3", "description": "how many",
                              "section": "properties"}
    assert dataset._task.get_user_properties(value_only=True) == {"sample_rate": "22050", "clips": "3"}
    print(json.dumps({"id": dataset.id, "images": [r["blob"]["hash"] for r in reports[1:3]]}))
"""


def test_urbansounds_style_script_round_trips_in_a_new_process(env: Path, tmp_path: Path) -> None:
    made = run_python(PRODUCER, env, tmp_path).stdout.split()[-1]
    seen = json.loads(run_python(CONSUMER, env, tmp_path).stdout)
    assert seen["id"] == made
    ds = Dataset.get(dataset_id=made)
    for r in ds.get_metadata("reports")[1:3]:  # the images decode as what was reported
        img = Image.open(io.BytesIO(_blob_bytes(ds, r["blob"])))
        assert img.format == "PNG"
    assert Image.open(io.BytesIO(_blob_bytes(ds, ds.get_metadata("reports")[2]["blob"]))).size == (5, 7)
    assert _blob_bytes(ds, ds.get_metadata("reports")[3]["blob"]) == WAV
    assert ds.list_files() == ["dog/bark.wav", "labels.csv"]  # nothing attached shows as a file


def _blob_bytes(ds: Dataset, ref: dict) -> bytes:
    from objstore.dataset_attachments import read_bytes

    return read_bytes(ds._store, ref, "test")


def test_binary_payloads_are_blobs_not_inline_json(env: Path) -> None:
    ds = make()
    big = np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    ds.get_logger().report_image("big", "noise", iteration=0, image=big)
    ds._task.upload_artifact("noise", big)
    record_file = env / "datasets" / f"{ds.id}.json"
    assert record_file.stat().st_size < 8000  # the PNG (~270 kB) and the .npz are not in the record
    report = Dataset.get(dataset_id=ds.id).get_metadata("reports")[0]
    assert report["content_type"] == "image/png" and report["blob"]["size"] > 200_000
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(_blob_bytes(ds, report["blob"])))), big)


# -- artifacts --------------------------------------------------------------------------------
def test_artifact_types_names_and_objects_follow_clearml(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "model.bin", b"\x00weights")
    write(src, "run/a.txt", "A")
    write(src, "run/sub/b.txt", "B")
    write(src, "run/sub/c.log", "C")
    ds = make()
    t = ds._task
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    assert t.upload_artifact("frame", frame) is True
    t.upload_artifact("frame-pq", frame, extension_name=".parquet")
    t.upload_artifact("frame-feather", frame, extension_name=".feather")
    t.upload_artifact("matrix", np.arange(6, dtype=np.int64).reshape(2, 3))
    t.upload_artifact("matrix-csv", np.eye(2), extension_name=".csv.gz")
    t.upload_artifact("image", Image.new("RGB", (3, 2), (9, 9, 9)))
    t.upload_artifact("config", {"b": 1, "a": [1, 2]})
    t.upload_artifact("config-yaml", {"k": "v"}, extension_name=".yaml")
    t.upload_artifact("ids", [3, 1, 2])
    t.upload_artifact("note", "some text")
    t.upload_artifact("weights", str(src / "model.bin"))
    t.upload_artifact("run", src / "run")
    t.upload_artifact("logs", str(src / "run" / "*.txt"))
    t.upload_artifact("pair", [src / "run" / "a.txt", src / "run" / "sub" / "b.txt"])
    t.upload_artifact("remote", "s3://bucket/data/file.csv")
    t.upload_artifact("classes", {1, 2, 3})
    t.upload_artifact("file", np.array([1.5]))  # a name numpy's savez would take as its own argument

    a = Dataset.get(dataset_id=ds.id)._task.artifacts
    assert isinstance(a, dict)
    rows = {n: (x.type, x._info.get("content_type"), x._info.get("file")) for n, x in a.items()}
    assert rows == {
        "frame": ("pandas", "text/csv", "frame.csv.gz"),
        "frame-pq": ("pandas", "application/parquet", "frame-pq.parquet"),
        "frame-feather": ("pandas", "application/feather", "frame-feather.feather"),
        "matrix": ("numpy", "application/numpy", "matrix.npz"),
        "matrix-csv": ("numpy", "text/csv", "matrix-csv.csv.gz"),
        "image": ("image", "image/png", "image.png"),
        "config": ("dict", "application/json", "config.json"),
        "config-yaml": ("dict", "application/yaml", "config-yaml.yaml"),
        "ids": ("JSON", "application/json", "ids.json"),
        "note": ("string", "text/plain", "note.txt"),
        "weights": ("custom", "application/octet-stream", "model.bin"),
        "run": ("archive", "application/zip", "run.zip"),
        "logs": ("archive", "application/zip", "run.zip"),
        "pair": ("archive", "application/zip", "pair.zip"),
        "remote": ("custom", "text/csv", "file.csv"),
        "classes": ("pickle", "application/pickle", "classes.pkl"),
        "file": ("numpy", "application/numpy", "file.npz"),
    }
    assert a["file"].get().tolist() == [1.5]
    pd.testing.assert_frame_equal(a["frame"].get(), frame)  # ClearML reads .csv.gz with index_col=0
    pd.testing.assert_frame_equal(a["frame-pq"].get(), frame)
    pd.testing.assert_frame_equal(a["frame-feather"].get(), frame)
    m = a["matrix"].get()
    assert m.dtype == np.int64 and m.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert a["matrix-csv"].get().tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert a["image"].get().size == (3, 2)
    assert a["config"].get() == {"b": 1, "a": [1, 2]} and a["config-yaml"].get() == {"k": "v"}
    assert a["ids"].get() == [3, 1, 2] and a["note"].get() == "some text"
    weights = a["weights"].get()
    assert isinstance(weights, Path) and weights.name == "model.bin"
    assert weights.read_bytes() == b"\x00weights"
    run = Path(a["run"].get_local_copy())
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == [
        "a.txt", "sub/b.txt", "sub/c.log"]
    assert (run / "sub" / "b.txt").read_text() == "B"
    zipped = Path(a["run"].get_local_copy(extract_archive=False))
    assert zipped.name == "run.zip" and zipped.is_file()
    logs = a["logs"].get()
    assert sorted(p.relative_to(logs).as_posix() for p in logs.rglob("*") if p.is_file()) == [
        "a.txt", "sub/b.txt"]
    pair = a["pair"].get()
    assert sorted(p.relative_to(pair).as_posix() for p in pair.rglob("*") if p.is_file()) == [
        "a.txt", "sub/b.txt"]
    assert a["remote"].url == "s3://bucket/data/file.csv" and a["remote"].size is None
    with pytest.warns(UserWarning, match="only the URL is kept"):
        assert a["remote"].get_local_copy() is None
    assert a["classes"].get() == {1, 2, 3}  # pickled here, so trusted here
    weights_artifact = a["weights"]
    assert weights_artifact.url == Path(weights_artifact.get_local_copy()).as_uri()
    import hashlib

    assert weights_artifact.hash == hashlib.sha256(b"\x00weights").hexdigest()
    assert weights_artifact.size == len(b"\x00weights") and weights_artifact.mode == "output"


def test_artifact_upload_options(tmp_path: Path) -> None:
    ds = make()
    t = ds._task
    with pytest.raises(DsError, match="auto_pickle=True"):
        t.upload_artifact("obj", object(), auto_pickle=False)
    t.upload_artifact("raw", {"a": 1}, serialization_function=lambda o: json.dumps(o).encode(),
                      extension_name=".bin")
    assert t.artifacts["raw"].get(deserialization_function=json.loads) == {"a": 1}
    t.upload_artifact("p", [1, 2], extension_name=".pkl", preview="two numbers")
    assert t.artifacts["p"].type == "pickle" and t.artifacts["p"].preview == "two numbers"
    t.upload_artifact("p", {"replaced": True})  # same name: replaced, as in ClearML
    assert t.artifacts["p"].get() == {"replaced": True}
    f = write(tmp_path, "tmp.txt", "x")
    t.upload_artifact("gone", str(f), delete_after_upload=True)
    assert not f.exists() and Path(t.artifacts["gone"].get_local_copy()).read_text() == "x"
    with pytest.raises(DsError, match="could not be found"):
        t.upload_artifact("missing", tmp_path / "no-such-folder")
    with pytest.raises(DsError, match="read-only"):
        t.artifacts["x"] = 1


def test_a_pickle_not_made_in_this_store_is_never_unpickled(env: Path, tmp_path: Path) -> None:
    ds = make()
    ds._task.upload_artifact("state", {"weights", "bias"})
    marker = tmp_path / "pwned"
    art = Dataset.get(dataset_id=ds.id)._task.artifacts["state"]
    with pytest.raises(DsError, match="block_unsafe_artifacts"):
        art.get(block_unsafe_artifacts=True)
    (env / "trusted-pickles").unlink()  # as a store that got the version from a remote
    art = Dataset.get(dataset_id=ds.id)._task.artifacts["state"]
    with pytest.raises(DsError, match=r"not made in this store.*deserialization_function=pickle.loads"):
        art.get()
    assert art.get(deserialization_function=pickle.loads) == {"weights", "bias"}
    assert not marker.exists()


@pytest.mark.parametrize("members, words", [
    ([("../evil.txt", b"x")], "refusing path"),
    ([("/abs.txt", b"x")], "refusing path"),
    ([("a.txt", b"1"), ("a.txt", b"2")], "not an archive that can be unpacked"),
    ([("a", b"file"), ("a/b.txt", b"under a file")], "not an archive that can be unpacked"),
])
def test_a_hostile_archive_is_never_unpacked_outside_its_folder(env: Path, tmp_path: Path, members,
                                                                words) -> None:
    """An archive artifact as a remote could send it: its names are checked before any write."""
    import warnings
    import zipfile

    from objstore import dataset_attachments as blobs

    ds = make()
    ds._task.upload_artifact("bundle", {"placeholder": True})
    bad = tmp_path / "bad.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(bad, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        for name, data in members:
            zf.writestr(name, data)
    with Store(env) as store:
        ref = blobs.put_file(store, bad)
    path = env / "datasets" / f"{ds.id}.json"
    record = json.loads(path.read_text())
    record["task"]["artifacts"]["bundle"] = {"type": "archive", "content_type": "application/zip",
                                             "file": "bundle.zip", "blob": ref}
    path.write_text(json.dumps(record))
    art = Dataset.get(dataset_id=ds.id)._task.artifacts["bundle"]
    with pytest.raises(DsError, match=words):
        art.get_local_copy(raise_on_error=True)
    with pytest.warns(UserWarning, match=words):
        assert art.get_local_copy() is None
    cache = env / "cache" / "artifacts" / ref["hash"]
    assert sorted(p.name for p in cache.iterdir()) == ["bundle.zip"]  # no folder, no temp left
    assert not (env / "cache" / "artifacts" / "evil.txt").exists() and not Path("/abs.txt").exists()


def test_artifacts_of_a_finalized_dataset_and_its_files_unchanged() -> None:
    ds = make()
    ds._task.upload_artifact("before", {"n": 1})
    ds.finalize()
    commit = ds._record["commit"]
    again = Dataset.get(dataset_id=ds.id)
    assert again._task.status == "completed"
    again._task.upload_artifact("after", {"n": 2})  # ClearML allows this on a completed task
    again._task.set_user_properties(checked="yes")
    again.get_logger().report_single_value("accuracy", 0.93)
    fresh = Dataset.get(dataset_id=ds.id)
    assert {n: a.get() for n, a in fresh._task.artifacts.items()} == {"before": {"n": 1}, "after": {"n": 2}}
    assert fresh._record["commit"] == commit and fresh.is_final()
    assert fresh._task.get_user_properties(value_only=True) == {"checked": "yes"}
    assert fresh.get_metadata("reports")[-1] == {"kind": "single_value", "title": "Summary",
                                                 "series": "accuracy", "value": 0.93,
                                                 "iteration": -(2 ** 31)}


def test_concurrent_writers_lose_no_update(env: Path, tmp_path: Path) -> None:
    ds = make()
    code = """
        import sys
        from objstore import Dataset
        ds = Dataset.get(dataset_id=sys.argv[1])
        for i in range(8):
            ds._task.upload_artifact(f"{sys.argv[2]}-{i}", {"i": i})
            ds._task.set_user_properties(**{f"{sys.argv[2]}-{i}": i})
            ds.get_logger().report_scalar("loss", sys.argv[2], 1.0 / (i + 1), i)
    """
    env_vars = dict(os.environ, DSSTORE_DIR=str(env))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), ds.id, who], cwd=tmp_path,
                              env=env_vars, stderr=subprocess.PIPE, text=True) for who in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    fresh = Dataset.get(dataset_id=ds.id)
    names = {f"{w}-{i}" for w in "ab" for i in range(8)}
    assert set(fresh._task.artifacts) == names
    assert set(fresh._task.get_user_properties()) == names
    assert len(fresh.get_metadata("reports")) == 16


# -- user properties, parameters, the web page ------------------------------------------------
def test_user_properties_in_clearml_forms() -> None:
    t = make()._task
    assert t.set_user_properties(backbone="great", stable=True) is True
    t.set_user_properties(depth={"type": int, "description": "layers", "value": 50})
    t.set_user_properties({"name": "lr", "description": "rate", "value": 0.1},
                          {"name": "opt", "value": "adam"})
    t.set_user_properties({"batch": 32, "epochs": {"value": 3, "description": "passes"}})
    t.set_user_properties([{"name": "seed", "value": 7}], [("dropout", 0.2)])
    values = t.get_user_properties(value_only=True)
    assert values == {"backbone": "great", "stable": "True", "depth": "50", "lr": "0.1", "opt": "adam",
                      "batch": "32", "epochs": "3", "seed": "7", "dropout": "0.2"}
    full = t.get_user_properties()
    assert full["depth"] == {"name": "depth", "type": "<class 'int'>", "description": "layers", "value": "50",
                             "section": "properties"}
    assert full["opt"] == {"name": "opt", "value": "adam", "section": "properties"}
    assert t.delete_user_properties([{"section": "properties", "name": "seed"}, ("properties", "opt")])
    assert "seed" not in t.get_user_properties() and "opt" not in t.get_user_properties()
    with pytest.raises(DsError, match="needs a 'value'"):
        t.set_user_properties(bad={"description": "no value"})


def test_connect_and_parameters_do_not_crash_on_clearml_forms() -> None:
    import argparse

    t = make()._task
    params = {"lr": 0.01, "optim": {"name": "sgd", "momentum": 0.9}}
    assert t.connect(params) is params
    assert t.connect({"epochs": 3}, name="train") == {"epochs": 3}
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    assert t.connect(parser) is parser

    class Cfg:
        def __init__(self):
            self.width = 4
            self._hidden = 1

    cfg = Cfg()
    assert t.connect(cfg, name="model") is cfg
    assert t.connect_configuration({"a": [1, 2]}, name="cfg") == {"a": [1, 2]}
    assert json.loads(t.get_configuration_object("cfg")) == {"a": [1, 2]}
    t.set_parameter("General/seed", 5)
    assert t.get_parameters() == {"General/lr": "0.01", "General/optim/name": "sgd",
                                  "General/optim/momentum": "0.9", "train/epochs": "3", "Args/batch": "16",
                                  "model/width": "4", "General/seed": "5"}
    assert t.get_parameters(cast=True)["General/lr"] == 0.01
    assert t.get_parameters_as_dict()["train"] == {"epochs": "3"}
    assert t.get_parameter("Args/batch", cast=True) == 16


def test_task_reads_back_what_the_logger_kept_and_shares_the_dataset_tags() -> None:
    ds = make(dataset_tags=["raw"])
    t = ds._task
    log = ds.get_logger()
    for i, loss in enumerate([0.9, 0.4, 0.6]):
        log.report_scalar("loss", "train", loss, i)
    log.report_scalar("loss", "val", 1.0, 0)
    log.report_single_value("mAP", 0.71)
    assert t.get_reported_scalars() == {"loss": {"train": {"x": [0, 1, 2], "y": [0.9, 0.4, 0.6]},
                                                 "val": {"x": [0], "y": [1.0]}}}
    assert t.get_last_scalar_metrics()["loss"]["train"] == {"last": 0.6, "min": 0.4, "max": 0.9}
    assert t.get_reported_single_values() == {"mAP": 0.71} and t.get_reported_single_value("mAP") == 0.71
    t.add_tags("checked audio")
    t.set_comment("clips of 4 s")
    fresh = Dataset.get(dataset_id=ds.id)
    assert fresh.tags == t.get_tags() and set(fresh.tags) == {"raw", "checked", "audio"}
    assert fresh.description == "clips of 4 s" and fresh._task.comment == "clips of 4 s"


def test_task_identity_and_web_page() -> None:
    ds = make()
    t = ds._task
    assert t.id == ds.id == t.task_id and t.name == "sounds" and t.get_project_name() == "audio"
    assert t.status == "in_progress" and t.flush() is True
    assert t.get_output_log_web_page() == f"http://127.0.0.1:8484/#dataset={ds.id}"
    assert isinstance(t.get_logger(), type(ds.get_logger()))


# -- the logger ----------------------------------------------------------------------------
class FakeFigure:
    """What report_matplotlib_figure needs of a matplotlib figure: savefig."""

    def savefig(self, f, format="png"):  # noqa: A002 - matplotlib's name
        f.write(png((4, 4), (0, 200, 0)))


class FakePlotly:
    def to_plotly_json(self):
        return {"data": [{"type": "scatter", "x": [1, 2, 3], "y": [2, 4, 8]}], "layout": {}}


def test_logger_reports_every_kind(tmp_path: Path) -> None:
    ds = make()
    log = ds.get_logger()
    img = write(tmp_path, "cat.jpg", b"\xff\xd8\xff\xe0jpeg-bytes")
    log.report_image("samples", "file", iteration=1, local_path=str(img))
    log.report_image("samples", "url", iteration=1, url="https://example.com/x.png")
    log.report_image("samples", "matrix", iteration=2, matrix=np.zeros((2, 2), dtype=np.uint8))
    log.report_media("audio", "clip", iteration=0, stream=io.BytesIO(WAV), file_extension="wav")
    log.report_media("text", "notes", stream=io.StringIO("hello"), file_extension=".txt")
    log.report_plotly("plot", "dict", figure={"data": [{"y": [1, 3]}], "layout": {"title": "x"}})
    log.report_plotly("plot", "object", figure=FakePlotly(), iteration=3)
    log.report_matplotlib_figure("fig", "mpl", figure=FakeFigure(), iteration=0)
    log.report_scatter2d("sc", "pts", scatter=np.array([[0, 1], [1, 3]]), xaxis="x", yaxis="y",
                         mode="markers")
    with pytest.warns(DeprecationWarning, match="report_scatter2d"):  # as ClearML warns
        log.report_line_plot("lines", [{"name": "up", "data": [[0, 0], [1, 1]]},
                                       _Series("down", [[0, 1], [1, 0]])], xaxis="t", yaxis="v")
    log.report_confusion_matrix("cm", "val", np.array([[5, 1], [2, 7]]), xlabels=["a", "b"],
                                ylabels=["a", "b"])
    log.report_histogram("h", "counts", values=np.array([3, 1]), xlabels=["x", "y"])
    log.report_scalar("loss", "train", value=float("nan"), iteration=4)
    log.report_text("done", print_console=False)
    wav = write(tmp_path, "clips/bark.wav", WAV)
    log.report_media("bark", "original_audio", local_path=wav)  # a Path, as urbansounds passes it
    labels = pd.DataFrame({"label": ["dog", "siren"] * 750})
    log.report_table("Raw Dataset Metadata", "Raw Dataset Metadata", table_plot=labels)
    log.report_histogram("Class distribution", "Class distribution", values=labels["label"].value_counts(),
                         iteration=0, xlabels=labels["label"].value_counts().index.tolist())
    assert log.flush() is True
    reports = Dataset.get(dataset_id=ds.id).get_metadata("reports")
    by = {(r["kind"], r["series"]): r for r in reports}
    assert by[("image", "file")]["file"] == "cat.jpg"
    assert by[("image", "file")]["content_type"] == "image/jpeg"
    assert _blob_bytes(ds, by[("image", "file")]["blob"]) == img.read_bytes()
    assert by[("image", "url")]["url"] == "https://example.com/x.png" and "blob" not in by[("image", "url")]
    assert Image.open(io.BytesIO(_blob_bytes(ds, by[("image", "matrix")]["blob"]))).size == (2, 2)
    assert by[("media", "clip")]["content_type"] == WAV_TYPE and by[("media", "clip")]["file"] == "clip.wav"
    assert _blob_bytes(ds, by[("media", "notes")]["blob"]) == b"hello"
    fig = json.loads(_blob_bytes(ds, by[("plotly", "dict")]["blob"]))
    assert fig == {"data": [{"y": [1, 3]}], "layout": {"title": "dict"}}  # ClearML titles it by series
    assert json.loads(_blob_bytes(ds, by[("plotly", "object")]["blob"]))["data"][0]["y"] == [2, 4, 8]
    assert _blob_bytes(ds, by[("matplotlib", "mpl")]["blob"]) == png((4, 4), (0, 200, 0))
    assert by[("scatter2d", "pts")]["points"] == [[0, 1], [1, 3]]
    lines = by[("line_plot", "up")]["lines"]
    assert [(x["name"], x["points"]) for x in lines] == [("up", [[0, 0], [1, 1]]), ("down", [[0, 1], [1, 0]])]
    assert by[("confusion_matrix", "val")]["matrix"] == [[5, 1], [2, 7]]
    assert by[("histogram", "counts")]["values"] == [3, 1]
    assert by[("scalar", "train")]["value"] == "NaN"  # JSON has no NaN; ClearML writes it so
    assert by[("text", "text")]["msg"] == "done"
    assert _blob_bytes(ds, by[("media", "original_audio")]["blob"]) == WAV
    table = by[("table", "Raw Dataset Metadata")]
    assert len(table["rows"]) == 1501 and table["total_rows"] is None  # under the record's budget: whole
    assert table["rows"][:2] == [["", "label"], [0, "dog"]]
    hist = by[("histogram", "Class distribution")]
    assert hist["values"] == [750, 750] and sorted(hist["xlabels"]) == ["dog", "siren"]


class _Series:
    def __init__(self, name, data):
        self.name, self.data, self.labels = name, data, None


def test_logger_refuses_what_clearml_refuses(tmp_path: Path) -> None:
    log = make().get_logger()
    with pytest.raises(DsError, match="exactly one of"):
        log.report_image("t", "s")
    with pytest.raises(DsError, match="exactly one of"):
        log.report_image("t", "s", url="https://x/y.png", image=np.zeros((2, 2)))
    with pytest.raises(DsError, match="file_extension"):
        log.report_media("t", "s", stream=io.BytesIO(b"x"))
    with pytest.raises(DsError, match="is not a file"):
        log.report_media("t", "s", local_path=str(tmp_path / "none.wav"))
    with pytest.raises(DsError, match="savefig"):
        log.report_matplotlib_figure("t", "s", figure=object())
    with pytest.raises(DsError, match="H x W"):
        log.report_image("t", "s", image=np.zeros((2, 2, 2)))
    with pytest.raises(DsError, match="cannot read the CSV file"):
        log.report_table("t", "s", csv=str(tmp_path / "none.csv"))


# -- typed metadata --------------------------------------------------------------------------
def test_metadata_keeps_dataframes_and_arrays_with_their_types() -> None:
    ds = make()
    frame = pd.DataFrame({"i": np.array([1, 2, 3], dtype=np.int32), "f": [0.5, float("nan"), 2.0],
                          "s": ["a", None, "c"], "b": [True, False, True],
                          "t": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
                          "c": pd.Categorical(["x", "y", "x"])},
                         index=pd.Index([10, 20, 30], name="row"))
    arrays = {"f32": np.random.default_rng(0).random((2, 3, 4), dtype=np.float32),
              "u8": np.arange(10, dtype=np.uint8), "flags": np.array([[True], [False]]),
              "words": np.array(["ab", "c"]), "scalar": np.array(3.5)}
    ds.set_metadata(frame, metadata_name="table")
    for name, arr in arrays.items():
        ds.set_metadata(arr, metadata_name=name)
    ds.set_metadata({"classes": ["dog", "cat"], "n": 2})
    ds.set_metadata(pd.DataFrame({0: [1.5], 1: ["x"]}), metadata_name="numbered columns")
    ds.set_metadata({"$ds": "pandas", "blob": "not one"}, metadata_name="lookalike")
    ds.finalize()
    fresh = Dataset.get(dataset_id=ds.id)
    pd.testing.assert_frame_equal(fresh.get_metadata("table"), frame)
    for name, arr in arrays.items():
        got = fresh.get_metadata(name)
        assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr), name
    assert fresh.get_metadata() == {"classes": ["dog", "cat"], "n": 2}
    pd.testing.assert_frame_equal(fresh.get_metadata("numbered columns"), pd.DataFrame({0: [1.5], 1: ["x"]}))
    assert fresh.get_metadata("lookalike") == {"$ds": "pandas", "blob": "not one"}
    assert fresh.get_metadata("absent") is None
    record = json.loads((Path(os.environ["DSSTORE_DIR"]) / "datasets" / f"{ds.id}.json").read_text())
    assert record["metadata"]["table"]["blob"]["size"] > 0 and len(json.dumps(record)) < 20_000


def test_parquet_is_read_on_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's threaded read leaves pool threads that abort the process at exit now and
    then (exit -6 after the script's work is done); metadata and artifacts read single-threaded."""
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"x": [1, 2]})
    ds = make()
    ds.set_metadata(frame, metadata_name="table")
    ds._task.upload_artifact("frame", frame, extension_name=".parquet")
    ds.finalize()
    seen: list[object] = []
    real = pq.read_table

    def spy(*args, **kw):
        seen.append(kw.get("use_threads", True))
        return real(*args, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    fresh = Dataset.get(dataset_id=ds.id)
    pd.testing.assert_frame_equal(fresh.get_metadata("table"), frame)
    pd.testing.assert_frame_equal(fresh._task.artifacts["frame"].get(), frame)
    assert seen == [False, False]


def test_metadata_refuses_what_it_cannot_keep_without_pickle() -> None:
    ds = make()
    with pytest.raises(DsError, match=r"pandas.DataFrame.*numpy.ndarray"):
        ds.set_metadata({1, 2}, metadata_name="a set")
    with pytest.raises(DsError, match="Python objects"):
        ds.set_metadata(np.array([{"a": 1}, None]), metadata_name="objects")
    with pytest.raises(DsError, match="cannot be stored as Parquet.*plain column types"):
        ds.set_metadata(pd.DataFrame({"a": [object()]}), metadata_name="objects in a frame")
    assert ds.get_metadata("a set") is None


def test_damaged_or_missing_blob_is_a_clear_error(env: Path) -> None:
    ds = make()
    ds.set_metadata(np.arange(3), metadata_name="arr")
    ds._task.upload_artifact("cfg", {"a": 1})
    path = env / "datasets" / f"{ds.id}.json"
    record = json.loads(path.read_text())
    record["metadata"]["arr"]["blob"]["chunks"][0][1] += 1  # lengths no longer add up
    cid = record["task"]["artifacts"]["cfg"]["blob"]["chunks"][0][0]
    record["task"]["artifacts"]["cfg"]["blob"]["chunks"][0][0] = "0" * len(cid)  # a chunk nobody stored
    path.write_text(json.dumps(record))
    fresh = Dataset.get(dataset_id=ds.id)
    with pytest.raises(FormatError, match="metadata.*damaged.*add up"):
        fresh.get_metadata("arr")
    with pytest.raises(DsError, match="artifact 'cfg'.*not in this store"):
        fresh._task.artifacts["cfg"].get()


# -- gc keeps attachments -------------------------------------------------------------------
def test_gc_keeps_attachments_and_prune_frees_what_no_record_names(env: Path, tmp_path: Path) -> None:
    from objstore import dataset_attachments as blobs
    from objstore.maintenance import gc

    ds = make()
    ds._task.upload_artifact("noise", np.random.default_rng(2).random(50_000))
    ds.get_logger().report_image("i", "s", image=np.zeros((5, 5, 3), dtype=np.uint8))
    ds.set_metadata(pd.DataFrame({"a": range(100)}), metadata_name="t")
    ds.finalize()
    with Store(env) as store:
        gc(store, reflog_grace=None)  # only what refs reach now
    fresh = Dataset.get(dataset_id=ds.id)
    assert fresh._task.artifacts["noise"].get().shape == (50_000,)
    assert fresh.get_metadata("t")["a"].tolist() == list(range(100))
    assert _blob_bytes(fresh, fresh.get_metadata("reports")[0]["blob"]).startswith(b"\x89PNG")
    keep = make("other")
    keep.set_metadata(pd.DataFrame({"a": range(100)}), metadata_name="same table")  # the same blob
    with Store(env) as store:
        assert set(blobs.chunk_ids(store, fresh._record)) >= {
            bytes.fromhex(c) for c, _ in fresh._task.artifacts["noise"]._info["blob"]["chunks"]}
    Dataset.delete(dataset_id=ds.id)
    broken = env / "datasets" / f"{'e' * 32}.json"
    broken.write_text("{not json")
    with Store(env) as store, store.locked():
        assert blobs.prune(store) == 0  # a record it cannot read might name any blob
    broken.unlink()
    with Store(env) as store:
        with store.locked():
            assert blobs.prune(store) == 2  # the array and the image; the table is still named
        report = gc(store, reflog_grace=None)
    assert report.chunks_dropped >= 2
    assert Dataset.get(dataset_id=keep.id).get_metadata("same table")["a"].tolist() == list(range(100))


def test_gc_itself_frees_the_files_of_a_deleted_dataset_but_not_in_a_dry_run(env: Path) -> None:
    from objstore.maintenance import gc

    ds = make()
    ds._task.upload_artifact("noise", np.random.default_rng(3).random(50_000))
    ds.finalize()
    Dataset.delete(dataset_id=ds.id)
    with Store(env) as store:
        assert gc(store, dry_run=True, reflog_grace=None).chunks_dropped == 0  # a dry run changes nothing
        assert gc(store, reflog_grace=None).chunks_dropped >= 1  # the artifact's chunks
        assert gc(store, reflog_grace=None).chunks_dropped == 0
    with Store(env) as store:
        assert [e.message for e in store.log(all_refs=True)] == []  # bookkeeping is not a version


# -- ds ui ----------------------------------------------------------------------------------
def build(tmp_path: Path) -> tuple[Path, str]:
    """A finalized dataset carrying every kind of attachment; returns (store path, dataset id)."""
    src = tmp_path / "src"
    write(src, "clip.wav", WAV)
    write(src, "folder/a.txt", "A")
    ds = make()
    ds.add_files(src / "clip.wav")
    t = ds._task
    t.upload_artifact("labels", pd.DataFrame({"label": ["dog", "cat"], "n": [3, 4]}))
    t.upload_artifact("labels-pq", pd.DataFrame({"label": ["dog"]}), extension_name=".parquet")
    t.upload_artifact("config", {"rate": 22050})
    t.upload_artifact("grid", np.arange(6).reshape(2, 3))
    t.upload_artifact("thumb", Image.new("RGB", (6, 4), (10, 200, 10)))
    t.upload_artifact("bundle", src / "folder")
    t.upload_artifact("state", {"x"})
    t.set_user_properties(sample_rate="22050")
    t.connect({"lr": 0.1})
    log = ds.get_logger()
    log.report_image("spectrogram", "clip", iteration=0, image=np.full((6, 8, 3), 120, dtype=np.uint8))
    log.report_media("audio", "clip", iteration=0, stream=io.BytesIO(WAV), file_extension=".wav")
    log.report_table("metadata", "table", iteration=0, table_plot=pd.DataFrame({"x": [1, 2]}))
    log.report_plotly("plot", "trend", figure={"data": [{"x": [0, 1, 2], "y": [1, 4, 9]}], "layout": {}})
    log.report_scatter2d("scatter", "pts", scatter=[[0, 0], [1, 2], [2, 1]])
    log.report_histogram("hist", "classes", values=[3, 5], xlabels=["dog", "cat"])
    log.report_confusion_matrix("cm", "val", [[1, 0], [0, 1]], xlabels=["a", "b"], ylabels=["a", "b"])
    log.report_scalar("loss", "train", 0.5, 1)
    log.report_single_value("accuracy", 0.9)
    log.report_text("hello log")
    ds.set_metadata(pd.DataFrame({"fold": [1, 2, 3]}), metadata_name="folds", ui_visible=False)
    ds.set_metadata({"classes": 2})
    ds.finalize()
    return Path(os.environ["DSSTORE_DIR"]), ds.id


def get_json(srv, path: str, status: int = 200):
    code, headers, body = request(srv, path)
    assert code == status, (path, code, body[:300])
    return json.loads(body)


def test_ui_api_shows_artifacts_reports_properties_and_metadata(tmp_path: Path) -> None:
    store_dir, did = build(tmp_path)
    before = snapshot(store_dir)
    with Store(store_dir) as store, running(store) as srv:
        listing = {d["id"]: d for d in get_json(srv, "/api/datasets")}
        assert listing[did]["artifacts"] == 7 and listing[did]["reports"] == 10
        graph = get_json(srv, "/api/graph")
        assert len(graph["commits"]) == 1  # the attachments ref is not a version
        d = get_json(srv, f"/api/dataset?id={did}")
        arts = {a["name"]: a for a in d["artifacts"]}
        assert set(arts) == {"labels", "labels-pq", "config", "grid", "thumb", "bundle", "state"}
        assert arts["thumb"]["view"] == "image" and arts["labels"]["view"] == "csv"
        assert d["properties"] == [{"name": "sample_rate", "value": "22050"}]
        assert d["parameters"] == [["General/lr", "0.1"]]
        assert [m["name"] for m in d["metadata"]] == ["folds", "metadata"]
        assert d["metadata"][1] == {"name": "metadata", "kind": "json", "value": {"classes": 2}}
        assert [r["kind"] for r in d["reports"]] == ["image", "media", "table", "plotly", "scatter2d",
                                                    "histogram", "confusion_matrix", "scalar", "single_value",
                                                    "text"]
        assert all("chunks" not in json.dumps(r) for r in d["reports"])

        def preview(ref_hash: str) -> dict:
            return get_json(srv, f"/api/attachment?id={did}&hash={ref_hash}")

        table = preview(arts["labels"]["blob"]["hash"])
        assert table["type"] == "table" and table["columns"] == ["", "label", "n"]
        assert table["rows"] == [["0", "dog", "3"], ["1", "cat", "4"]]
        assert preview(arts["labels-pq"]["blob"]["hash"])["rows"] == [["dog"]]
        config = preview(arts["config"]["blob"]["hash"])
        assert config["type"] == "json" and config["value"] == {"rate": 22050}
        grid = preview(arts["grid"]["blob"]["hash"])
        assert grid["type"] == "array" and grid["shape"] == [2, 3] and "[[0 1 2]" in grid["text"]
        assert preview(arts["thumb"]["blob"]["hash"])["type"] == "image"
        bundle = preview(arts["bundle"]["blob"]["hash"])
        assert bundle["type"] == "archive" and bundle["files"] == [{"name": "a.txt", "size": 1}]
        state = preview(arts["state"]["blob"]["hash"])
        assert state["type"] == "message" and "never unpickled" in state["message"]
        folds = preview(d["metadata"][0]["blob"]["hash"])
        assert folds["type"] == "table" and folds["format"] == "parquet" and folds["rows"] == [[1], [2], [3]]
        plot = preview(d["reports"][3]["blob"]["hash"])
        assert plot["type"] == "json" and plot["value"]["data"][0]["y"] == [1, 4, 9]

        code, headers, body = request(srv, f"/api/blob?id={did}&hash={d['reports'][0]['blob']['hash']}")
        assert code == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
        assert "sandbox" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        code, headers, body = request(srv, f"/api/blob?id={did}&hash={d['reports'][1]['blob']['hash']}")
        assert code == 200 and headers["content-type"] == WAV_TYPE and body == WAV
        assert request(srv, f"/api/blob?id={did}&hash={arts['config']['blob']['hash']}")[0] == 404
        assert "media-src 'self'" in request(srv, "/")[1]["content-security-policy"]
        assert get_json(srv, f"/api/attachment?id={did}&hash=nothex", 400)
        assert "names no content" in get_json(srv, f"/api/attachment?id={did}&hash={'0' * 32}", 404)["error"]
        assert get_json(srv, "/api/dataset?id=../../etc", 400)
        assert "no dataset" in get_json(srv, f"/api/dataset?id={'a' * 32}", 404)["error"]
    assert snapshot(store_dir) == before, "the UI wrote to the store"


def test_ui_shows_hostile_record_values_as_data(env: Path, tmp_path: Path) -> None:
    """A record as a remote could send it: odd types, markup, a damaged reference."""
    ds = make()
    ds._task.upload_artifact("ok", {"a": 1})
    path = env / "datasets" / f"{ds.id}.json"
    record = json.loads(path.read_text())
    good = record["task"]["artifacts"]["ok"]["blob"]
    record["task"]["artifacts"]["<img src=x onerror=alert(1)>"] = {
        "type": "<b>", "blob": {"hash": "f" * 32, "size": 1, "chunks": [[good["chunks"][0][0], 2]]}}
    record["task"]["properties"] = {"p": {"name": "<script>", "value": ["not", "text"]}, "q": "not a dict"}
    record["task"]["parameters"] = "not a dict"
    reports = [{"kind": "table", "rows": "nope"}, "junk", {"kind": "image", "blob": 5}]
    record["metadata"] = {"n": float("inf"), "reports": reports}
    path.write_text(json.dumps(record))
    with Store(env) as store, running(store) as srv:
        d = get_json(srv, f"/api/dataset?id={ds.id}")
        assert "<img src=x onerror=alert(1)>" in {a["name"] for a in d["artifacts"]}
        assert d["properties"] == [{"name": "<script>", "value": "['not', 'text']"}]
        assert d["parameters"] == [] and len(d["reports"]) == 2
        assert d["metadata"] == [{"name": "n", "kind": "json", "value": "inf"}]
        bad = [a for a in d["artifacts"] if a["type"] == "<b>"][0]
        err = get_json(srv, f"/api/attachment?id={ds.id}&hash={bad['blob']['hash']}", 404)
        assert "damaged" in err["error"] and "add up" in err["error"]
        assert request(srv, f"/api/blob?id={ds.id}&hash={good['hash']}")[0] == 404  # JSON is no image


def test_page_opens_the_web_page_link_and_draws_everything(browser, tmp_path: Path) -> None:
    store_dir, did = build(tmp_path)
    link = Dataset.get(dataset_id=did)._task.get_output_log_web_page()
    fragment = link.partition("#")[2]
    with Store(store_dir) as store, running(store) as srv:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(f"{srv.url}#{fragment}")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            card = page.locator("#dataset-card")
            assert card.is_visible() and did in page.locator("#ds-title").inner_text()
            assert page.locator("#ds-body tr.artifact").count() == 7
            page.wait_for_function("() => [...document.querySelectorAll('#ds-body .report.image img')]"
                                   ".every(i => i.naturalWidth > 0)")
            assert page.locator("#ds-body .report.image img").evaluate("i => i.naturalWidth") == 8
            assert page.locator("#ds-body .report.media audio").count() == 1
            assert page.locator("#ds-body .report.table td").all_inner_texts() == ["0", "1", "1", "2"]
            page.wait_for_selector("#ds-body .report.plotly svg.chart polyline")
            assert page.locator("#ds-body .report.scatter2d svg.chart polyline").count() == 1
            assert page.locator("#ds-body .report.histogram svg.chart rect.bar").count() == 2
            assert page.locator("#ds-body .report.confusion_matrix td").count() == 6
            assert "0.9" in page.locator("#ds-body .report.single_value").inner_text()
            assert "hello log" in page.locator("#ds-body .report.text").inner_text()
            assert "22050" in page.locator("#ds-body table.props").inner_text()
            page.wait_for_selector("#ds-body .meta-item[data-name='folds'] table.parquet")
            folds = page.locator("#ds-body .meta-item[data-name='folds'] td")
            assert folds.all_inner_texts() == ["1", "2", "3"]
            page.locator("#ds-body tr.artifact[data-name='thumb']").click()
            page.wait_for_function("() => { const i = document.querySelector('#preview img'); "
                                   "return i && i.naturalWidth === 6; }")
            page.locator("#ds-body tr.artifact[data-name='labels']").click()
            page.wait_for_selector("#preview table.csv")
            assert page.locator("#preview table.csv th").all_inner_texts() == ["", "label", "n"]
            assert not page.locator("#error").is_visible()
            assert errors == []
        finally:
            page.close()


# -- review findings: records stay small, reports beside metadata, checked references, names -------
def _record(env: Path, did: str) -> dict:
    return json.loads((env / "datasets" / f"{did}.json").read_text())


def test_big_tables_are_blobs_and_the_record_stays_small(env: Path, tmp_path: Path) -> None:
    ds = make()
    frame = pd.DataFrame(np.random.default_rng(5).random((1000, 200)))
    log = ds.get_logger()
    for i in range(6):  # inline, six of these made a 31 MB record, which a remote skips
        log.report_table("stats", f"part{i}", iteration=0, table_plot=frame)
    lines = ["a,b,c"] + [f"{i},{'x' * 40},{i * 2}" for i in range(3000)]
    big_csv = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    log.report_table("file", "csv", csv=str(big_csv))
    log.report_table("rows", "list", table_plot=[["k", "v"], *[[i, "y" * 50] for i in range(2000)]])
    log.report_table("small", "whole", table_plot=pd.DataFrame({"x": range(1500)}))  # under budget
    assert (env / "datasets" / f"{ds.id}.json").stat().st_size < 200_000
    from objstore.dataset_logger import full_report

    reports = Dataset.get(dataset_id=ds.id).get_metadata("reports")
    by = {r["series"]: r for r in reports}
    part = by["part3"]
    assert part["total_rows"] == 1000 and part["total_columns"] == 201 and part["content_type"] == "text/csv"
    assert 2 <= len(part["rows"]) <= 11 and all(len(r) <= 50 for r in part["rows"])
    assert part["rows"][0][:3] == ["", "0", "1"] and part["rows"][1][:2] == [0, frame.iloc[0, 0]]
    full = full_report(ds._store, part)
    assert len(full["rows"]) == 1001 and full["rows"][0] == ["", *map(str, range(200))]
    assert np.allclose(np.array(full["rows"][1:], dtype=float)[:, 1:], frame.to_numpy())
    assert _blob_bytes(ds, by["csv"]["blob"]) == big_csv.read_bytes()  # a CSV file is kept as it is
    assert by["csv"]["total_rows"] == 3000
    assert by["csv"]["rows"][:2] == [["a", "b", "c"], ["0", "x" * 40, "0"]]
    listed = full_report(ds._store, by["list"])["rows"]
    assert by["list"]["total_rows"] == 2000 and listed[0] == ["k", "v"] and listed[-1] == ["1999", "y" * 50]
    whole = by["whole"]  # a table under the budget stays whole in the record, as before
    assert "blob" not in whole and whole["total_rows"] is None and len(whole["rows"]) == 1501


def test_big_plots_and_text_are_blobs_too(env: Path) -> None:
    ds = make()
    log = ds.get_logger()
    rng = np.random.default_rng(2)
    points = rng.random((40_000, 2))
    log.report_scatter2d("sc", "many", scatter=points, iteration=1, xaxis="x")
    log.report_scatter3d("sc3", "many", scatter=rng.random((20_000, 3)))
    log.report_histogram("h", "many", values=rng.integers(0, 9, 50_000))
    log.report_confusion_matrix("cm", "big", rng.integers(0, 9, (200, 200)))
    log.report_surface("surf", "big", rng.random((150, 150)))
    with pytest.warns(DeprecationWarning):
        log.report_line_plot("lp", [{"name": "a", "data": points[:20_000]}], xaxis="t", yaxis="v")
    log.report_text("x" * 2_000_000)
    log.report_scatter2d("sc", "few", scatter=[[0, 1], [1, 2]])  # small ones stay inline
    assert (env / "datasets" / f"{ds.id}.json").stat().st_size < 100_000
    from objstore.dataset_logger import full_report

    reports = Dataset.get(dataset_id=ds.id).get_metadata("reports")
    by = {(r["kind"], r["series"]): r for r in reports}
    sc = by[("scatter2d", "many")]
    assert "points" not in sc and sc["in_blob"] == ["points"] and sc["xaxis"] == "x" and sc["iteration"] == 1
    assert full_report(ds._store, sc)["points"] == points.tolist()
    hist = by[("histogram", "many")]
    assert "values" not in hist and len(full_report(ds._store, hist)["values"]) == 50_000
    assert len(full_report(ds._store, by[("confusion_matrix", "big")])["matrix"]) == 200
    assert len(full_report(ds._store, by[("surface", "big")])["matrix"]) == 150
    assert len(full_report(ds._store, by[("scatter3d", "many")])["points"]) == 20_000
    assert len(full_report(ds._store, by[("line_plot", "a")])["lines"][0]["points"]) == 20_000
    text = by[("text", "text")]
    assert text["truncated"] is True and text["msg"] == "x" * len(text["msg"]) and len(text["msg"]) <= 4096
    assert full_report(ds._store, text)["msg"] == "x" * 2_000_000
    assert by[("scatter2d", "few")]["points"] == [[0, 1], [1, 2]] and "blob" not in by[("scatter2d", "few")]
    with pytest.raises(DsError, match="title"):
        log.report_scalar("t" * 5000, "s", 1.0, 0)


def test_ui_shows_a_big_table_report_and_pages_through_all_of_it(env: Path) -> None:
    ds = make()
    frame = pd.DataFrame({"n": range(3000), "text": [f"row {i} " + "z" * 30 for i in range(3000)]})
    ds.get_logger().report_table("big", "table", table_plot=frame)
    ds.get_logger().report_scatter2d("sc", "many", scatter=[[i, i * i] for i in range(20_000)])
    with Store(env) as store, running(store) as srv:
        d = get_json(srv, f"/api/dataset?id={ds.id}")
        table, scatter = d["reports"]
        assert table["total_rows"] == 3000 and table["rows"][0] == ["", "n", "text"] and table["blob"]
        assert "chunks" not in json.dumps(table)
        page = get_json(srv, f"/api/attachment?id={ds.id}&hash={table['blob']['hash']}")
        assert page["type"] == "table" and page["columns"] == ["", "n", "text"] and page["start"] == 0
        assert page["rows"][0][:2] == ["0", "0"] and page["more"] is True
        last = get_json(srv, f"/api/attachment?id={ds.id}&hash={table['blob']['hash']}&start=2990")
        assert [r[1] for r in last["rows"]] == [str(i) for i in range(2990, 3000)] and last["more"] is False
        for bad in ("-1", "x", "1e3", "99999999999999999999"):
            assert "start" in get_json(srv, f"/api/attachment?id={ds.id}&hash={table['blob']['hash']}"
                                            f"&start={bad}", 400)["error"]
        drawn = get_json(srv, f"/api/attachment?id={ds.id}&hash={scatter['blob']['hash']}")
        assert drawn["type"] == "json" and len(drawn["value"]["points"]) == 20_000


def test_page_pages_through_a_big_table_and_draws_a_big_scatter(browser, env: Path) -> None:
    ds = make()
    frame = pd.DataFrame({"n": range(3000), "text": [f"row {i} " + "z" * 30 for i in range(3000)]})
    ds.get_logger().report_table("big", "table", table_plot=frame)
    ds.get_logger().report_scatter2d("sc", "many", scatter=[[i, i * i] for i in range(20_000)])
    ds.finalize()
    with Store(env) as store, running(store) as srv:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{srv.url}#dataset={ds.id}")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            block = page.locator("#ds-body .report.table")
            assert "of 3000 rows" in block.inner_text()
            page.wait_for_selector("#ds-body .report.scatter2d svg.chart polyline")
            block.locator("a.full-table").click()
            page.wait_for_selector("#ds-body .report.table .pager")
            assert block.locator("tbody tr").count() == 50
            assert block.locator("tbody tr").first.locator("td").nth(1).inner_text() == "0"
            block.locator(".pager button.next").click()
            page.wait_for_function("() => document.querySelector("
                                   "'#ds-body .report.table tbody td:nth-child(2)').textContent === '50'")
            assert "51–100 of 3000" in block.locator(".pager").inner_text()
            assert not page.locator("#error").is_visible() and errors == []
        finally:
            page.close()


def test_reports_do_not_replace_metadata_named_reports(env: Path) -> None:
    ds = make()
    assert ds.get_metadata("reports") is None
    ds.set_metadata({"weekly": "summary", "owner": "ana"}, metadata_name="reports")
    ds.get_logger().report_scalar("loss", "train", 0.5, 0)
    fresh = Dataset.get(dataset_id=ds.id)
    assert fresh.get_metadata("reports") == {"weekly": "summary", "owner": "ana"}
    assert fresh._task.get_reported_scalars() == {"loss": {"train": {"x": [0], "y": [0.5]}}}
    assert fresh._task.artifacts["reports"].get() == {"weekly": "summary", "owner": "ana"}  # metadata is one
    record = _record(env, ds.id)
    assert record["metadata"]["reports"] == {"weekly": "summary", "owner": "ana"}
    assert [r["kind"] for r in record["task"]["reports"]] == ["scalar"]
    other = make("other")
    other.get_logger().report_scalar("loss", "train", 0.25, 1)
    assert [r["value"] for r in other.get_metadata("reports")] == [0.25]  # still read back so
    assert "reports" not in other._task.artifacts and list(other._task.artifacts) == []
    with Store(env) as store, running(store) as srv:
        d = get_json(srv, f"/api/dataset?id={ds.id}")
        assert d["metadata"] == [{"name": "reports", "kind": "json",
                                  "value": {"owner": "ana", "weekly": "summary"}}]
        assert [r["kind"] for r in d["reports"]] == ["scalar"]
        assert {x["id"]: x["reports"] for x in get_json(srv, "/api/datasets")}[ds.id] == 1


def test_reports_kept_by_the_previous_layout_still_read(env: Path) -> None:
    ds = make()
    ds.set_metadata({"classes": 2})
    path = env / "datasets" / f"{ds.id}.json"
    record = json.loads(path.read_text())
    old = [{"kind": "scalar", "title": "loss", "series": "train", "value": 0.5, "iteration": 0},
           {"kind": "table", "title": "t", "series": "s", "rows": [["a"], [1]], "url": None,
            "total_rows": None}]
    record["metadata"]["reports"] = old  # where reports were kept before
    path.write_text(json.dumps(record))
    fresh = Dataset.get(dataset_id=ds.id)
    assert fresh.get_metadata("reports") == old
    assert fresh._task.get_reported_scalars() == {"loss": {"train": {"x": [0], "y": [0.5]}}}
    assert set(fresh._task.artifacts) == {"metadata"}
    with Store(env) as store, running(store) as srv:
        d = get_json(srv, f"/api/dataset?id={ds.id}")
        assert [m["name"] for m in d["metadata"]] == ["metadata"] and len(d["reports"]) == 2
    fresh.get_logger().report_scalar("loss", "train", 0.25, 1)  # a new report keeps the old ones
    again = Dataset.get(dataset_id=ds.id)
    assert [r.get("value") for r in again.get_metadata("reports")] == [0.5, None, 0.25]
    assert again.get_metadata("metadata") == {"classes": 2}
    assert "reports" not in _record(env, ds.id)["metadata"]


def _forge(env: Path, did: str, blob_hash: str) -> None:
    path = env / "datasets" / f"{did}.json"
    record = json.loads(path.read_text())
    record["task"] = {"artifacts": {"a": {"type": "archive", "file": "x.zip",
                                          "blob": {"hash": blob_hash, "size": 0, "chunks": []}}}}
    path.write_text(json.dumps(record))


def test_an_artifact_reference_is_checked_before_it_names_a_path(env: Path, tmp_path: Path) -> None:
    ds = make()
    ds.finalize()
    # a record from a remote may say anything: its "hash" must never become a path
    _forge(env, ds.id, "../../../../outside/dir")
    assert (env / "cache" / "artifacts" / "../../../../outside").resolve() == tmp_path / "outside"
    art = Dataset.get(dataset_id=ds.id)._task.artifacts["a"]
    with pytest.warns(UserWarning, match="damaged"):
        assert art.get_local_copy() is None
    assert not (tmp_path / "outside").exists()
    with pytest.raises(FormatError, match="damaged"):
        art.get()
    # a zip planted outside the store is not unpacked either
    victim = tmp_path / "victim"
    victim.mkdir()
    import zipfile

    with zipfile.ZipFile(victim / "x.zip", "w") as zf:
        zf.writestr("secret.txt", "from outside")
    _forge(env, ds.id, "../../../../victim")
    art = Dataset.get(dataset_id=ds.id)._task.artifacts["a"]
    with pytest.warns(UserWarning, match="damaged"):
        assert art.get_local_copy() is None
    with pytest.raises(FormatError, match="damaged"):
        art.get()
    assert os.listdir(victim) == ["x.zip"]
    assert not (env / "cache" / "artifacts").exists() or not any((env / "cache" / "artifacts").iterdir())


def test_write_to_checks_the_reference_before_making_a_folder(env: Path, tmp_path: Path) -> None:
    from objstore import dataset_attachments as blobs

    make()
    with Store(env) as store, pytest.raises(FormatError, match="damaged"):
        blobs.write_to(store, {"hash": "zz", "size": 0, "chunks": []}, tmp_path / "new" / "f", "test")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["raw/metadata", "stats: v1", "ünï cödé ✓", "..", "a/../b", ".", "sp ace",
                                  ".hidden", "/abs", "x" * 300])
def test_artifacts_named_with_any_characters_read_back(name: str) -> None:
    ds = make()
    frame = pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 6], name="i"))
    t = ds._task
    t.upload_artifact(name, frame)
    fresh = Dataset.get(dataset_id=ds.id)._task
    art = fresh.artifacts[name]
    local = Path(art.get_local_copy())
    cache = Path(os.environ["DSSTORE_DIR"]) / "cache" / "artifacts"
    assert local.resolve().parent.parent == cache.resolve() and local.name.endswith(".csv.gz")
    pd.testing.assert_frame_equal(art.get(), frame)
    t.upload_artifact(name, np.eye(2), extension_name=".csv.gz")
    assert np.array_equal(Dataset.get(dataset_id=ds.id)._task.artifacts[name].get(), np.eye(2))
    t.upload_artifact(name, np.arange(3))
    assert Dataset.get(dataset_id=ds.id)._task.artifacts[name].get().tolist() == [0, 1, 2]
