"""Evaluation metrics, plain numpy: ranking (HR@k, NDCG@k), classification (AUC, calibration), uplift (Qini, AUUC).

Definitions follow the papers the published tables use:
- HR@k / NDCG@k: full ranking of the target among all items (SASRec, Kang & McAuley 2018; HSTU, Zhai et al.
  2024). The target's rank counts the items scored strictly higher, so ties favour no one by accident of order.
- Qini curve (Radcliffe 2007): after targeting the top n by predicted uplift, Y_t(n) - Y_c(n) * N_t(n) / N_c(n)
  (treated orders minus controls' orders scaled to the treated count). Uplift curve (Rzepakowski & Jaroszewicz
  2012): (Y_t/N_t - Y_c/N_c)(n) * n. AUUC is the uplift curve's area, as a mean over n; the Qini
  coefficient is the Qini curve's area above the random-targeting diagonal, per customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def target_ranks(scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each row's target among all columns: (N, V) scores, (N,) ids -> (N,) int.

    `exclude` (N, V) bool removes items from the ranking (e.g. already seen); the target itself never is.
    """
    scores = np.asarray(scores, dtype=np.float64).copy()
    rows = np.arange(len(targets))
    target_score = scores[rows, targets]
    if exclude is not None:
        scores[exclude] = -np.inf
    return (scores > target_score[:, None]).sum(axis=1)


def ranking_metrics(ranks: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """HR@k and NDCG@k (one relevant item per row) and MRR from 0-based target ranks."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    out["mrr"] = float((1.0 / (ranks + 1.0)).mean())
    return out


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class is absent."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_table(labels: np.ndarray, predicted: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of the prediction: mean predicted vs observed rate, with counts."""
    frame = pd.DataFrame({"label": np.asarray(labels, dtype=float), "predicted": np.asarray(predicted, dtype=float)})
    frame["bin"] = pd.qcut(frame.predicted.rank(method="first"), q=min(bins, len(frame)), labels=False)
    table = (
        frame.groupby("bin")
        .agg(predicted=("predicted", "mean"), observed=("label", "mean"), count=("label", "size"))
        .reset_index(drop=True)
    )
    return table


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Count-weighted mean |predicted - observed| over the calibration bins."""
    return float((table["count"] * (table.predicted - table.observed).abs()).sum() / table["count"].sum())


def uplift_curves(treatment: np.ndarray, outcome: np.ndarray, uplift: np.ndarray) -> pd.DataFrame:
    """Qini and uplift curves after targeting the top n customers by predicted uplift, n = 1..N."""
    order = np.argsort(-np.asarray(uplift, dtype=float), kind="stable")
    treated = np.asarray(treatment)[order] == 1
    y = np.asarray(outcome, dtype=float)[order]
    n_t, n_c = np.cumsum(treated), np.cumsum(~treated)
    y_t, y_c = np.cumsum(y * treated), np.cumsum(y * ~treated)
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = y_t - np.where(n_c > 0, y_c * n_t / n_c, 0.0)
        rate_gap = np.where((n_t > 0) & (n_c > 0), y_t / np.maximum(n_t, 1) - y_c / np.maximum(n_c, 1), 0.0)
    n = np.arange(1, len(order) + 1)
    return pd.DataFrame({"targeted": n, "fraction": n / len(order), "qini": qini, "uplift_curve": rate_gap * n})


def uplift_summary(curves: pd.DataFrame) -> dict[str, float]:
    """AUUC (mean of the uplift curve) and the Qini coefficient (area above the random line, per customer)."""
    if curves.empty:
        return {"auuc": float("nan"), "qini_coefficient": float("nan")}
    total = curves.qini.iloc[-1]
    random_line = total * curves.fraction.to_numpy()
    return {
        "auuc": float(curves.uplift_curve.mean()),
        "qini_coefficient": float((curves.qini.to_numpy() - random_line).mean() / len(curves)),
    }
