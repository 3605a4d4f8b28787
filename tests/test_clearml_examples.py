"""The code examples of ClearML's Dataset SDK page, unchanged apart from the import line.

Placeholders of the page (parent ids, paths, bucket URLs) are bound to real values
here; URLs of buckets become local folders (`file://`), since the tests start no cloud.
`Dataset.import_offline_session` has no counterpart: objstore datasets are always local,
so there is no offline session to import.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from objstore import Dataset

from .conftest import write


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / ".dsstore"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "path/to/folder_or_file/a.csv", "a,b\n1,2\n")
    write(tmp_path, "path/to/folder/img.jpg", os.urandom(100))
    write(tmp_path, "path/to/csv", "x,y\n1,2\n")
    write(tmp_path, "my_image.jpg", os.urandom(50))


def _final(name: str, project: str = "dataset project", **kw) -> str:
    ds = Dataset.create(dataset_name=name, dataset_project=project, **kw)
    ds.add_files(path="path/to/folder_or_file")
    ds.finalize()
    return ds.id


def test_create_with_parents() -> None:
    PARENT_DS_ID_1, PARENT_DS_ID_2 = _final("p1"), _final("p2")  # noqa: N806
    dataset = Dataset.create(
      dataset_name='dataset name',
      dataset_project='dataset project',
      parent_datasets=[PARENT_DS_ID_1, PARENT_DS_ID_2],
      dataset_version="1.0",
      output_uri="gs://bucket-name/folder",
      description='my dataset description'
    )
    assert dataset.get_dependency_graph()[dataset.id] == [PARENT_DS_ID_1, PARENT_DS_ID_2]
    assert dataset.version == "1.0" and dataset.get_default_storage() == "gs://bucket-name/folder"


def test_squash_both_options() -> None:
    DS1_ID, DS2_ID, DS3_ID = _final("d1"), _final("d2"), _final("d3")  # noqa: N806
    _final("dataset1 name", "dataset1 project")
    _final("dataset2 name", "dataset2 project")
    # option 1 - list dataset IDs
    squashed_dataset_1 = Dataset.squash(
      dataset_name='squashed dataset name',
      dataset_ids=[DS1_ID, DS2_ID, DS3_ID]
    )

    # option 2 - list project and dataset pairs
    squashed_dataset_2 = Dataset.squash(
      dataset_name='squashed dataset 2',
      dataset_project_name_pairs=[('dataset1 project', 'dataset1 name'),
                                  ('dataset2 project', 'dataset2 name')]
    )
    assert squashed_dataset_1.list_files() == squashed_dataset_2.list_files() == ["a.csv"]


def test_get_with_all_filters() -> None:
    ds = Dataset.create(dataset_name="Example Dataset", dataset_project="Example Project",
                        dataset_tags=["my tag"], dataset_version="1.2")
    ds.finalize()
    dataset = Dataset.get(
            dataset_id=None,
            dataset_project="Example Project",
            dataset_name="Example Dataset",
            dataset_tags="my tag",
            dataset_version="1.2",
            only_completed=True,
            only_published=False,
    )
    assert dataset.id == ds.id


def test_add_files_examples() -> None:
    dataset = Dataset.create(dataset_name="my dataset", dataset_project="example project")
    dataset.add_files(path="path/to/folder_or_file")
    dataset.add_files(
      path="path/to/folder",
      wildcard="~/data/*.jpg",
      recursive=True
    )
    assert dataset.list_files() == ["a.csv"]  # that wildcard matches nothing, as in ClearML
    dataset.add_files(path="path/to/folder", wildcard="*.jpg", recursive=True)
    assert dataset.list_files() == ["a.csv", "img.jpg"]
    dataset.remove_files(dataset_path="*.csv", recursive=True)
    assert dataset.list_files() == ["img.jpg"]


def test_add_external_files_examples(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    write(bucket, "path_to_folder_or_file/x.jpg", os.urandom(10))
    write(bucket, "path_to_another_folder_or_file/y.jpg", os.urandom(10))
    dataset = Dataset.create(dataset_name="my dataset", dataset_project="example project")
    dataset.add_external_files(
      source_url=f"file://{bucket}/path_to_folder_or_file",
      dataset_path="/my_dataset/new_folder/"
    )
    dataset.add_external_files(
      source_url=[
        f"file://{bucket}/path_to_folder_or_file",
        f"file://{bucket}/path_to_another_folder_or_file",
      ],
      dataset_path="/my_dataset/new_folder/"
    )
    # Add all jpg files located in s3 bucket called "my_bucket" to the dataset:
    dataset.add_external_files(
      source_url=f"file://{bucket}/",
      wildcard = "*.jpg",
      dataset_path="/my_dataset/new_folder/"
    )
    assert dataset.list_files() == [
        "my_dataset/new_folder/path_to_another_folder_or_file/y.jpg",
        "my_dataset/new_folder/path_to_folder_or_file/x.jpg",
        "my_dataset/new_folder/x.jpg",
        "my_dataset/new_folder/y.jpg",
    ]


def test_logger_examples() -> None:
    dataset = Dataset.create(dataset_name="my dataset", dataset_project="example project")
    histogram_data = pd.Series([10, 4], index=["cat", "dog"])
    # Attach a table to the dataset
    dataset.get_logger().report_table(
        title="Raw Dataset Metadata", series="Raw Dataset Metadata", csv="path/to/csv"
    )

    # Attach a histogram to the table
    dataset.get_logger().report_histogram(
        title="Class distribution",
        series="Class distribution",
        values=histogram_data,
        iteration=0,
        xlabels=histogram_data.index.tolist(),
        yaxis="Number of samples",
    )
    reports = dataset.get_metadata("reports")
    assert reports[0]["rows"] == [["x", "y"], ["1", "2"]]
    assert reports[1]["values"] == [10, 4] and reports[1]["xlabels"] == ["cat", "dog"]


def test_delete_rename_move_examples() -> None:
    _final("example dataset", "example project", dataset_version="3.0")
    _final("Example dataset", "Example project")
    Dataset.delete(
      dataset_id=None,
      dataset_project="example project",
      dataset_name="example dataset",
      force=False,
      dataset_version="3.0",
      entire_dataset=False
    )
    assert Dataset.list_datasets(dataset_project="example project") == []
    Dataset.rename(
      new_dataset_name="New name",
      dataset_project="Example project",
      dataset_name="Example dataset",
    )
    Dataset.move_to_project(
      new_dataset_project="New project",
      dataset_project="Example project",
      dataset_name="New name",
    )
    assert [d["name"] for d in Dataset.list_datasets(dataset_project="New project")] == ["New name"]


def test_offline_example() -> None:
    # Use the set_offline class method before creating a Dataset
    Dataset.set_offline(offline_mode=True)
    # Create a dataset
    dataset = Dataset.create(dataset_name="Dataset example", dataset_project="Example project")
    # add files to dataset
    dataset.add_files(path='my_image.jpg')
    assert Dataset.is_offline() and dataset.list_files() == ["my_image.jpg"]
    Dataset.set_offline(offline_mode=False)
