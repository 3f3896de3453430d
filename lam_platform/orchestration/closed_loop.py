"""The closed loop (plan, do, check, act): outcomes of a called list update the campaign head.

Run: `lam close-loop --workdir ./lam-demo --outcomes called.parquet` (a campaign log of the calls made:
customer_id, event_timestamp, campaign_id, offer, method, treatment, outcome; optionally policy,
outcome_value, propensity). It checks the rows (bad ones go to WORKDIR/quarantine with the reason, the
good ones are kept), appends them to the campaign log, fine-tunes the campaign head from its last version
on the new outcomes as a Ray job (backbone frozen), and saves a new model version whose card records
the head's metrics on those outcomes before and after. The next `lam score` / `lam serve` call list uses it.

`lam_platform.orchestration.simulated_loop` runs call -> outcome -> update on the simulator, outcomes from
its ground truth.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lam_platform.campaigns.training_data import finetune_arrays, training_events
from lam_platform.campaigns.training_shards import write_training_shards
from lam_platform.core.atomic_files import governance_lock
from lam_platform.core.errors import UserError
from lam_platform.core.workdir import Workdir
from lam_platform.data.campaign_log import CAMPAIGN_COLUMNS, _row_ids, read_campaign_log, write_campaign_log
from lam_platform.data.platform_config import PlatformConfig, PlatformConfigError
from lam_platform.data.pseudonyms import PSEUDONYM
from lam_platform.data.suppression import ErasedCustomers
from lam_platform.evaluation import metrics
from lam_platform.features.store import open_store, schema_fingerprint
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, next_version, split_state_dict, versions_with_head
from lam_platform.lightning_modules.batches import CampaignContext, EventBatch, dataclass_from_arrays
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.ray_jobs.training import fit_with_ray

REQUIRED = {
    "customer_id": "string",
    "event_timestamp": "timestamp",
    "campaign_id": "string",
    "offer": "string",
    "method": "string",
    "treatment": "0/1",
    "outcome": "0/1",
}
OPTIONAL = ("policy", "outcome_value", "propensity")


def read_outcomes(workdir: Workdir, path: Path, offers: list[str], methods: list[str]) -> tuple[pd.DataFrame, int]:
    """The valid rows of an outcome file, and how many were not; those go to the quarantine folder with
    their reason. Rows of erased customers (suppression.py) are neither.

    Raises only when the file as a whole cannot be used (unreadable, a required column missing).
    """
    frame = (
        pd.read_csv(path, dtype={"customer_id": str, "customer_ref": str})
        if path.suffix == ".csv"
        else pd.read_parquet(path)
    )
    if "customer_id" not in frame and "customer_ref" in frame:  # the re-identified export, annotated by the callers
        frame = frame.rename(columns={"customer_ref": "customer_id"})
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; an outcome file needs {REQUIRED}")
    frame = frame[[*REQUIRED, *[c for c in OPTIONAL if c in frame]]].copy()
    ids = frame.customer_id.astype("string")
    raw = ids.notna() & (ids != "") & ~ids.str.fullmatch(PSEUDONYM.pattern).fillna(False)
    if raw.any():  # refused whole: a quarantine copy would store raw ids inside the workdir
        raise UserError(
            f"{path}: {int(raw.sum())} customer_id values are not pseudonyms (a re-identified export?); "
            "the platform takes pseudonymous ids only (the export's customer_ref column). Nothing was taken"
        )
    # Outcomes of customers erased since the list was built are dropped, never logged or quarantined.
    frame = frame[~ErasedCustomers.load(workdir).mask(frame.customer_id.astype("string"))].reset_index(drop=True)
    frame["event_timestamp"] = pd.to_datetime(frame.event_timestamp, utc=True, errors="coerce")
    reasons = pd.Series(None, index=frame.index, dtype=object)

    def flag(bad: pd.Series, why: str) -> None:
        reasons[bad & reasons.isna()] = why

    flag(frame.customer_id.isna() | (frame.customer_id.astype(str).str.len() == 0), "customer_id is empty")
    flag(frame.event_timestamp.isna(), "event_timestamp is not a time")
    flag(~frame.offer.isin(offers), f"offer is not one of {offers}")
    flag(~frame.method.isin(methods), f"method is not one of {methods}")
    for column in ("treatment", "outcome"):
        flag(~frame[column].isin([0, 1]), f"{column} is not 0 or 1")
    if "propensity" in frame:
        flag(~((frame.propensity > 0) & (frame.propensity <= 1)), "propensity is not in (0, 1]")
    flag(frame.duplicated(["campaign_id", "customer_id"], keep="first"), "a second row for this campaign and customer")
    bad = reasons.notna()
    if bad.any():
        workdir.quarantine.mkdir(parents=True, exist_ok=True)
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
        frame[bad].assign(reason=reasons[bad]).to_parquet(workdir.quarantine / f"outcomes-{stamp}.parquet", index=False)
    good = frame[~bad].reset_index(drop=True)
    for column in ("treatment", "outcome"):
        good[column] = good[column].astype("int64")
    return good, int(bad.sum())


def append_to_campaign_log(workdir: Workdir, rows: pd.DataFrame) -> int:
    """Add rows whose (campaign_id, customer_id) the log does not hold yet; returns how many were new."""
    with governance_lock(workdir.root):  # `lam forget` rewrites the same file
        rows = rows[~ErasedCustomers.load(workdir).mask(rows.customer_id)]  # re-checked under the lock
        log = read_campaign_log(workdir)
        key = ["campaign_id", "customer_id"]
        fresh = rows.merge(log[key], on=key, how="left", indicator=True)
        fresh = fresh[fresh._merge == "left_only"].drop(columns="_merge")
        if len(fresh):
            fresh = fresh.assign(**{c: None for c in CAMPAIGN_COLUMNS if c not in fresh})
            fresh["contact_id"] = _row_ids(fresh).to_numpy()
            fresh = fresh[CAMPAIGN_COLUMNS].astype(
                {"outcome": "float64", "outcome_value": "float64", "propensity": "float64"}
            )
            write_campaign_log(pd.concat([log[CAMPAIGN_COLUMNS], fresh], ignore_index=True), workdir)
    return len(fresh)


def head_metrics(backbone, head, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """AUC, log loss and calibration of a campaign head on a tokenized campaign set (`finetune_arrays`):
    each row scored point-in-time at its contact, for the arm it got."""
    with torch.no_grad():
        state = backbone(dataclass_from_arrays(EventBatch, arrays)).customer
        out = head(state, dataclass_from_arrays(CampaignContext, arrays))
    predicted = np.where(
        arrays["treatment"] == 1,
        torch.sigmoid(out.logit_contacted).numpy(),
        torch.sigmoid(out.logit_not_contacted).numpy(),
    )
    y = arrays["outcome"].astype(float)
    clipped = np.clip(predicted, 1e-6, 1 - 1e-6)
    return {
        "rows": len(y),
        "auc": metrics.roc_auc(y, predicted),
        "log_loss": float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean()),
        "mean_predicted": float(predicted.mean()),
        "observed_rate": float(y.mean()),
    }


def update_campaign_head(workdir: Workdir, rows: pd.DataFrame, job: JobConfig, artifact: ModelArtifact) -> dict:
    """Fine-tune `artifact`'s campaign head on `rows` (Ray job, backbone frozen); save it as a new version.
    Under the shared governance lock, like every training: an erasure waits for it, or goes first."""
    with governance_lock(workdir.root, shared=True):
        return _update_campaign_head(workdir, rows, job, artifact)


def _update_campaign_head(workdir: Workdir, rows: pd.DataFrame, job: JobConfig, artifact: ModelArtifact) -> dict:
    rows = rows[~ErasedCustomers.load(workdir).mask(rows.customer_id)]  # erased since the log was read
    store = open_store(workdir)
    artifact.check_schema(schema_fingerprint(store))
    until = rows.event_timestamp.max() + pd.Timedelta(microseconds=1)
    profiles = read_profiles(workdir.profiles)
    eligible = consenting_customers(profiles)
    events = training_events(workdir, until, eligible)
    # One point-in-time set: the head is measured on it before and after, and trained on it in between.
    arrays, counts = finetune_arrays(store, events, rows, artifact.tokenizer, eligible)
    backbone = artifact.load_backbone()  # frozen: the updated version keeps these weights
    before = head_metrics(backbone, artifact.load_head("campaign_response"), arrays)
    data = workdir.training / f"update-{artifact.path.name}"
    write_training_shards(arrays, data)
    stage = job.update_stage.model_copy(
        update={"trainable_blocks": 0}
    )  # the backbone stays: only the head learns from a small batch
    fit = fit_with_ray(
        "campaign_response",
        data,
        artifact.config,
        stage,
        job,
        workdir.ray_results,
        f"update-{artifact.path.name}-{_digest(rows)}",
        backbone_weights=artifact.path / "backbone.pt",
        head_weights=artifact.path / "heads" / "campaign_response.pt",
    )
    parts = split_state_dict(fit.state_dict)
    updated = artifact.derive(next_version(workdir.artifacts), backbone.state_dict())
    info = {
        **counts,
        "metrics": fit.metrics,
        "compute": fit.compute,
        "history": fit.history,
        "updated_from": artifact.path.name,
    }
    updated.add_head("campaign_response", parts["campaign_response"], {**info, "before": before})
    # Measured after saving: in-sample, on the same outcomes the head was just fitted on.
    after = head_metrics(backbone, updated.load_head("campaign_response"), arrays)
    card = updated.card
    card["heads"]["campaign_response"]["after_in_sample"] = after
    updated.write_card(card)
    return {
        "artifact": str(updated.path),
        "updated_from": artifact.path.name,
        "rows": len(rows),
        "before": before,
        "after_in_sample": after,
    }


def _digest(rows: pd.DataFrame) -> str:
    """Names the Ray run by the rows it learns from: the same outcomes again resume that run, not a new one."""
    keys = "\n".join(sorted(rows.campaign_id.astype(str) + "/" + rows.customer_id.astype(str)))
    return hashlib.sha1(keys.encode()).hexdigest()[:10]


def close_loop(workdir: Workdir, outcomes: Path, job: JobConfig) -> dict:
    """Ingest one outcome file and update the campaign head from the newest servable version."""
    if not PlatformConfig.load(workdir.root).contact_allowed:
        raise PlatformConfigError(
            f"{workdir.config}: consent is `analysis_only`: this workdir contacts no one, so "
            "it has no call outcomes to learn from"
        )
    versions = versions_with_head(workdir.artifacts, "campaign_response")
    if not versions:
        raise FileNotFoundError(f"no fine-tuned model under {workdir.artifacts}: run `lam finetune` first")
    artifact = ModelArtifact(versions[-1])
    rows, quarantined = read_outcomes(workdir, outcomes, artifact.tokenizer.offers, artifact.tokenizer.methods)
    if rows.empty:
        raise ValueError(f"{outcomes}: no valid outcome rows ({quarantined} quarantined in {workdir.quarantine})")
    new = append_to_campaign_log(workdir, rows)
    result = update_campaign_head(workdir, rows, job, artifact)
    return {"ingested": len(rows), "quarantined": quarantined, "new_in_log": new, **result}
