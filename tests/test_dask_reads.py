"""Reading a version with Dask across worker processes through ``ds://``: each worker
reads only the byte ranges of its partitions (fetched from the remote on demand), and the
frames equal what pandas reads from the original files."""

from __future__ import annotations

from dataclasses import replace

import pytest

from objstore.store import Store

from .conftest import write

pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as c, Client(c) as client:
        yield client


def _csv(rows: int) -> bytes:
    return b"id,value,label\n" + b"".join(b"%d,%d,row-%d\n" % (i, i * 31 % 1000, i) for i in range(rows))


def test_read_csv_and_parquet_of_a_remote_version_on_two_workers(cluster, moto_s3, work, tmp_path):
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from objstore.remote import push
    from objstore.tree_edit import TreeEditor
    from objstore.worktree import add

    csv = _csv(300_000)  # about 6 MB: a dozen chunks
    write(work, "tables/big.csv", csv)
    frame = pd.DataFrame({"id": range(200_000), "x": [i * 0.5 for i in range(200_000)]})
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, row_group_size=25_000)
    write(work, "tables/t.parquet", buf.getvalue())
    store = Store.init(work)
    try:
        add(store, ["tables"], cwd=str(work))
        store.commit("tables")
        url = f"s3://{moto_s3.new_bucket()}/store"
        store.set_config(replace(store.config, remotes={"origin": {"url": url, "options": moto_s3.options}}))
        push(store, "origin", refs=["main"])
        chunks_of_csv = len(TreeEditor(store.meta, store.head_tree()).get("tables/big.csv").chunk_list())
    finally:
        store.close()
    opts = {"remote": url, "remote_options": moto_s3.options, "cache_dir": str(tmp_path / "cache")}

    def stats() -> dict:
        import fsspec

        return fsspec.filesystem("ds", **opts).read_stats()

    parts = dd.read_csv("ds://@main/tables/big.csv", blocksize=1_000_000, storage_options=opts)
    assert parts.npartitions >= 4  # byte ranges of one file, read by whichever worker gets each
    got = parts.compute(scheduler=cluster.get).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, pd.read_csv(io.BytesIO(csv)), check_dtype=False)  # string flavours
    decoded = sum(s["chunks_decoded"] for s in cluster.run(stats).values())
    # each partition decodes the chunks of its range and at most one past it: a partition that
    # read the whole file would decode them all (npartitions times as many)
    n = parts.npartitions
    assert chunks_of_csv <= decoded <= chunks_of_csv + 2 * n < n * chunks_of_csv, (decoded, chunks_of_csv, n)

    table = dd.read_parquet("ds://@main/tables/t.parquet", storage_options=opts, split_row_groups=True)
    assert table.npartitions >= 2
    pd.testing.assert_frame_equal(table.compute(scheduler=cluster.get).reset_index(drop=True), frame)
