"""Fairness of a call list: selection and order rates by age band and gender against the eligible base.

Run: `lam fairness --workdir ./lam-demo` (after `lam score`): JSON with, per attribute and group, the
eligible and selected counts, the selection rate and its ratio to the best group's (flagged below 0.8,
the four-fifths rule), the mean predicted P(order | called) of the selected, their observed order rate
where the caller knows it (on the simulator: the ground truth's P(order | called), an expectation),
and the calibration gap predicted - observed (flagged when it differs from the whole list's gap by more
than `calibration_margin`). Groups with fewer than `min_selected` selected customers are reported but
not flagged for calibration, and groups with fewer than `min_eligible` eligible ones not flagged at all:
their rates are noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lam_platform.data.platform_config import PlatformConfig
from lam_platform.governance.consent import consented, read_profiles

ATTRIBUTES = ("age_band", "gender")
FOUR_FIFTHS = 0.8


@dataclass(frozen=True)
class FairnessSettings:
    calibration_margin: float = 0.05
    min_eligible: int = 30
    min_selected: int = 10


def fairness_report(
    eligible: pd.DataFrame,
    selected: pd.DataFrame,
    settings: FairnessSettings = FairnessSettings(),
    attributes: tuple[str, ...] = ATTRIBUTES,
) -> dict:
    """eligible: customer_id + `attributes` (the base the list was drawn from); selected: customer_id,
    predicted (P(order | called) as scored) and optionally observed (order rate or 0/1 outcome)."""
    cut_by = tuple(attributes)  # the groups this report is cut by
    _check_inputs(eligible, selected, cut_by)
    chosen = selected.merge(eligible[["customer_id", *cut_by]], on="customer_id", how="left")
    has_observed = "observed" in chosen and chosen.observed.notna().any()
    overall_gap = float(chosen.predicted.mean() - chosen.observed.mean()) if has_observed else None
    by_attribute, flags = {}, []
    for attribute in cut_by:
        groups = _group_rates(eligible, chosen, attribute, has_observed)
        flags += _flag_groups(attribute, groups, overall_gap, settings)
        by_attribute[attribute] = groups
    return {
        "eligible": len(eligible),
        "selected": len(selected),
        "overall_selection_rate": len(selected) / len(eligible) if len(eligible) else float("nan"),
        "overall_calibration_gap": overall_gap,
        "calibration_margin": settings.calibration_margin,
        "attributes": by_attribute,
        "flags": flags,
    }


def _check_inputs(eligible: pd.DataFrame, selected: pd.DataFrame, cut_by: tuple[str, ...]) -> None:
    missing = [a for a in cut_by if a not in eligible]
    if missing:
        raise ValueError(f"eligible base lacks {missing}: the fairness report needs {list(cut_by)}")
    unknown = set(selected.customer_id) - set(eligible.customer_id)
    if unknown:
        raise ValueError(f"{len(unknown)} selected customers are not in the eligible base (e.g. {sorted(unknown)[0]})")


def _group_rates(eligible: pd.DataFrame, chosen: pd.DataFrame, attribute: str, has_observed: bool) -> list[dict]:
    """Per group of `attribute`: eligible and selected counts, selection rate, predicted and observed order rates."""
    base = eligible[attribute].fillna("unknown").astype(str)
    picked = chosen[attribute].fillna("unknown").astype(str)
    groups = []
    for group in sorted(base.unique()):
        n_eligible, in_list = int((base == group).sum()), chosen[picked == group]
        row = {
            "group": group,
            "eligible": n_eligible,
            "selected": len(in_list),
            "selection_rate": len(in_list) / n_eligible if n_eligible else float("nan"),
            "predicted_order_rate": float(in_list.predicted.mean()) if len(in_list) else None,
            "observed_order_rate": float(in_list.observed.mean()) if has_observed and len(in_list) else None,
        }
        if row["observed_order_rate"] is not None:
            row["calibration_gap"] = row["predicted_order_rate"] - row["observed_order_rate"]
        groups.append(row)
    return groups


def _flag_groups(
    attribute: str, groups: list[dict], overall_gap: float | None, settings: FairnessSettings
) -> list[dict]:
    """Add each group's ratio to the best group and its four-fifths and calibration flags; return the flags raised."""
    flags = []
    supported = [g for g in groups if g["eligible"] >= settings.min_eligible]
    best = max((g["selection_rate"] for g in supported), default=0.0)
    for g in groups:
        g["ratio_to_best"] = g["selection_rate"] / best if best > 0 else None
        g["four_fifths_flag"] = bool(
            g["eligible"] >= settings.min_eligible and best > 0 and g["selection_rate"] < FOUR_FIFTHS * best
        )
        g["calibration_flag"] = bool(
            overall_gap is not None
            and g["selected"] >= settings.min_selected
            and abs(g["calibration_gap"] - overall_gap) > settings.calibration_margin
        )
        for kind in ("four_fifths", "calibration"):
            if g[f"{kind}_flag"]:
                flags.append(
                    {
                        "attribute": attribute,
                        "group": g["group"],
                        "kind": kind,
                        "value": round(
                            g["ratio_to_best"] if kind == "four_fifths" else g["calibration_gap"] - overall_gap, 4
                        ),
                    }
                )
    return flags


def call_list_fairness(
    workdir,
    settings: FairnessSettings = FairnessSettings(),
    observed: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> dict:
    """The report for the workdir's latest call list against the consenting base. `observed`, where the
    caller knows it, gives each listed row's order rate (on the simulator: the ground truth's
    P(order | called) at the scoring time, passed in by the commands that run on a simulated world)."""
    path = workdir.call_list
    if not path.exists():
        raise FileNotFoundError(f"no call list at {path}: run `lam score --workdir {workdir.root}` first")
    call_list = pd.read_parquet(path)
    profiles = read_profiles(workdir.profiles)
    eligible = profiles[consented(profiles.consent_marketing)]
    selected = pd.DataFrame({"customer_id": call_list.customer_id, "predicted": call_list.p_order_if_called})
    if observed is not None:
        selected["observed"] = np.asarray(observed(call_list), dtype=float)
    # A customer who withdrew (or was erased) after the list was scored has left the eligible base: judged
    # against today's base, the list no longer holds them, and the report says how many left.
    still = selected.customer_id.isin(eligible.customer_id).to_numpy()
    selected = selected[still].reset_index(drop=True)
    # Age band and gender where the profile has them, else the categorical profile fields lam.yaml declares.
    attributes = tuple(a for a in ATTRIBUTES if a in profiles) or tuple(
        PlatformConfig.load(workdir.root).categorical_profile
    )
    return {
        "call_list": str(path),
        "left_since_listed": int((~still).sum()),
        **fairness_report(eligible, selected, settings, attributes),
    }
