"""`lam purge`: delete events older than the retention window from the offline event table.

Partitions wholly before the cutoff are removed file by file (an unlink is atomic); the partition
that straddles it is rewritten without the old rows (`atomic_files`). Sequence and aggregate
snapshots taken before the cutoff go too. A crash leaves each file old or new; running the command
again finishes the job. Online sequences keep their last N events until the next `lam materialize`.
The window is recorded, and ingestion and pushes suppress events older than it from then on.

Run: `lam purge --workdir ./lam-demo --retention-days 365`
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lam_platform.core.atomic_files import drop_rows, governance_lock, remove_staging
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP
from lam_platform.data.suppression import record_retention
from lam_platform.features.store import snapshot_path, snapshot_times
from lam_platform.governance.audit import append_entry


def purge_events(workdir: Workdir, retention_days: float, now: pd.Timestamp | None = None) -> dict:
    """Remove every event with event_timestamp < now - retention_days; returns counts."""
    if retention_days <= 0:
        raise ValueError(f"--retention-days must be positive, got {retention_days}")
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    if now.tzinfo is None:
        raise ValueError(f"--as-of must carry a time zone, e.g. {now.isoformat()}+00:00")
    cutoff = now - pd.Timedelta(days=retention_days)
    removed, files = 0, 0
    with governance_lock(workdir.root):
        remove_staging(workdir.root)
        record_retention(workdir, retention_days)  # first: from now on nothing older enters again
        for path in sorted(workdir.events.rglob("*.parquet")) if workdir.events.exists() else []:
            if path.name.startswith("."):
                continue
            n_old = drop_rows(
                path, lambda t: pc.less(t.column("event_timestamp"), pa.scalar(cutoff, TIMESTAMP)), unlink_empty=True
            )
            removed += n_old
            files += bool(n_old)
        for partition in workdir.events.glob("event_date=*") if workdir.events.exists() else []:
            if not any(partition.iterdir()):
                partition.rmdir()
        snapshots = [t for t in snapshot_times(workdir) if t < cutoff]
        for t in snapshots:
            for folder in (workdir.sequences, workdir.aggregates):
                snapshot_path(folder, t).unlink(missing_ok=True)
    result = {
        "cutoff": cutoff.isoformat(),
        "events_removed": removed,
        "files_changed": files,
        "snapshots_removed": len(snapshots),
    }
    append_entry(
        workdir.governance_log,
        {
            "time": pd.Timestamp.now(tz="UTC").isoformat(),
            "action": "purge",
            "retention_days": retention_days,
            **result,
            "status": "complete",
        },
    )
    return result
