"""Training sets on disk: Parquet shards of tokenized arrays, read by Ray Data or by a plain Dataset.

    <folder>/part-00000.parquet, part-00001.parquet, ...   one column per batch field (EventBatch,
                                                           CampaignContext, labels, targets)

Array fields (B, L, ...) are stored as Ray's Arrow tensor extension type, so `ray.data.read_parquet`
yields numpy batches of the right shape and dtype, and each Ray Train worker streams its shard
(`get_dataset_shard`) without the driver ever loading the set. `ShardDataset` reads the same files
for a run without Ray.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Every training set's time column: when each example's input ends (UTC microseconds). Training validates
# on the newest examples by it (lam_platform.ray_jobs.training.ValidationSplit).
EXAMPLE_TIME = "example_time_us"
ROWS_PER_SHARD = 8192  # examples per shard file


def _tensor_array(values: np.ndarray) -> pa.Array:
    from ray.data.extensions import ArrowTensorArray  # registers Ray's tensor extension type with Arrow

    return ArrowTensorArray.from_numpy(values) if values.ndim > 1 else pa.array(values)


class TrainingShardWriter:
    """Parquet shards written a part at a time into a staging folder that replaces `folder` whole when the
    `with` block ends without an error (an error leaves the previous set as it was)."""

    def __init__(self, folder: Path, rows_per_shard: int = ROWS_PER_SHARD) -> None:
        self.folder, self.rows_per_shard = Path(folder), rows_per_shard
        self.staging = self.folder.with_name(self.folder.name + ".staging")
        self.parts = self.rows = 0

    def __enter__(self) -> TrainingShardWriter:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        return self

    def write(self, arrays: dict[str, np.ndarray]) -> int:
        """Append equal-length arrays (an empty part is written only while nothing else is: it keeps the schema)."""
        lengths = {name: len(values) for name, values in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"training arrays differ in length: {lengths}")
        n = next(iter(lengths.values()), 0)
        if n == 0 and self.parts:
            return 0
        if n and self.parts and self.rows == 0:  # the empty part that held the schema: real rows replace it
            shutil.rmtree(self.staging)
            self.staging.mkdir()
            self.parts = 0
        for lo in range(0, max(n, 1), self.rows_per_shard):
            part = {name: _tensor_array(values[lo : lo + self.rows_per_shard]) for name, values in arrays.items()}
            pq.write_table(pa.table(part), self.staging / f"part-{self.parts:05d}.parquet")
            self.parts += 1
        self.rows += n
        return n

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        self.staging.rename(self.folder)


def write_training_shards(arrays: dict[str, np.ndarray], folder: Path, rows_per_shard: int = ROWS_PER_SHARD) -> int:
    """Write equal-length arrays as Parquet shards into `folder` (replaced whole: staged, then renamed)."""
    with TrainingShardWriter(folder, rows_per_shard) as writer:
        return writer.write(arrays)


class ArraySpill:
    """Parts of a set (equal-length arrays) kept on disk as raw column files and read back by row range without
    loading a part whole: the campaign set is built by customer shard but stored in the log's order, so its
    parts are merged from here a chunk at a time (lam_platform.campaigns.training_events)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.layouts: list[dict[str, tuple[np.dtype, tuple[int, ...]]]] = []

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        k = len(self.layouts)
        (self.folder / str(k)).mkdir(parents=True)
        layout = {}
        for name, values in arrays.items():
            if values.dtype.hasobject:
                raise TypeError(f"training array {name!r} holds Python objects; only numeric arrays are stored")
            np.ascontiguousarray(values).tofile(self.folder / str(k) / name)
            layout[name] = (values.dtype, values.shape[1:])
        self.layouts.append(layout)

    def rows(self, part: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows [start, stop) of a part, each column read from its file at the range's offset."""
        arrays = {}
        for name, (dtype, shape) in self.layouts[part].items():
            per_row = int(np.prod(shape, dtype=np.int64))
            values = np.fromfile(
                self.folder / str(part) / name,
                dtype=dtype,
                count=(stop - start) * per_row,
                offset=start * per_row * dtype.itemsize,
            )
            arrays[name] = values.reshape((stop - start, *shape))  # not -1: a column may be (n, L, 0)
        return arrays


def read_training_shards(folder: Path, since_us: int | None = None) -> dict[str, np.ndarray]:
    """All shards of `folder` as numpy arrays (for runs without Ray, tests and benchmarks); with `since_us`,
    only the examples at or after that time (a validation split)."""
    import pyarrow.compute as pc
    import ray.data.extensions  # noqa: F401  (the tensor extension type must be registered to read it back)

    files = sorted(Path(folder).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no training shards in {folder}: build the training set first")
    if since_us is None:
        table = pa.concat_tables(pq.read_table(f) for f in files)
    else:  # each file filtered as it is read: a worker holds the validation rows, not the set
        newest = pc.field(EXAMPLE_TIME) >= since_us
        table = pa.concat_tables(pq.read_table(f, filters=newest) for f in files)
    return {name: _to_numpy(table.column(name)) for name in table.column_names}


def batches_of(arrays: dict[str, np.ndarray], batch_size: int):
    """In-order batches of torch tensors as one DataLoader (a bare list would read as many loaders to
    Lightning): a validation loader to iterate every epoch."""
    import torch
    from torch.utils.data import DataLoader

    n = len(next(iter(arrays.values()), []))
    batches = [
        {k: torch.as_tensor(v[lo : lo + batch_size]) for k, v in arrays.items()} for lo in range(0, n, batch_size)
    ]
    return DataLoader(batches, batch_size=None)


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    parts = [
        chunk.to_numpy() if isinstance(chunk.type, pa.ExtensionType) else chunk.to_numpy(zero_copy_only=False)
        for chunk in column.chunks
    ]
    return np.concatenate(parts) if parts else np.array([])


class ArrayDataset:
    """A map-style dataset over equal-length arrays: item i is {name: array[i]} (torch's default collate stacks)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.length = len(next(iter(self.arrays.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i] for k, v in self.arrays.items()}


class ShardDataset(ArrayDataset):
    """An ArrayDataset over a shard folder, read whole."""

    def __init__(self, folder: Path) -> None:
        super().__init__(read_training_shards(folder))
