"""`lam evaluate`: every held-out metric of a model, as JSON and as an HTML page with PNG plots.

Run: `lam evaluate --workdir ./lam-demo` (after `lam score`). Writes WORKDIR/outputs/evaluation/:
evaluation.json, index.html, policies.png, gain.png, qini.png, calibration.png, next_action.png.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from lam_platform.core.workdir import Workdir
from lam_platform.evaluation.plots import save_figure as _save
from lam_platform.governance.consent import read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.simulation.evaluation import (
    STACKED,
    baseline_scores,
    campaign_evaluation,
    compare_policies,
    format_table,
    next_action_evaluation,
    randomized_trial,
)


def evaluate(
    workdir: Workdir,
    artifact_path: Path | None = None,
    capacity: int | None = None,
    seed: int = 0,
    exclude_seen: bool = False,
) -> dict:
    """Compute next-action, campaign-response, uplift and policy metrics; write JSON, plots and the page."""
    scores_path = workdir.outputs / "scores.parquet"
    if not scores_path.exists():
        raise FileNotFoundError(f"no scores at {scores_path}: run `lam score --workdir {workdir.root}` first")
    from lam_platform.campaigns.call_list import rank_call_list

    artifact = ModelArtifact(artifact_path or latest_version(workdir.artifacts, "campaign_response"))
    lam = pd.read_parquet(scores_path)
    n_customers = len(read_profiles(workdir.profiles, columns=["customer_id"]))
    capacity = capacity or max(1, round(0.05 * n_customers))
    baselines = baseline_scores(workdir, seed, stack=artifact)  # the stacked one informs: the goal is the LAM's head
    gbt, stacked = baselines["gbt_aggregates"], baselines[STACKED]
    trial = randomized_trial(workdir, lam.customer_id.unique(), seed)
    campaign, curves, bins = {}, {}, {}
    for name, scores in (("lam", lam), ("gbt_aggregates", gbt), (STACKED, stacked)):
        campaign[name], curves[name], bins[name] = campaign_evaluation(trial, scores)
    policies = compare_policies(workdir, rank_call_list(lam, capacity), seed, gbt=gbt, informational={STACKED: stacked})
    result = {
        "model_version": artifact.path.name,
        "capacity": capacity,
        "seed": seed,
        "next_action": next_action_evaluation(workdir, artifact, exclude_seen),
        "campaign_response": campaign,
        "policies": policies.to_dict("records"),
    }
    folder = workdir.outputs / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(json.dumps(result, indent=2))
    _plot(folder, result, policies, curves, bins)
    (folder / "index.html").write_text(_page(result, policies))
    return {
        "evaluation": str(folder / "evaluation.json"),
        "page": str(folder / "index.html"),
        "lam_vs_legacy": round(float(policies.set_index("policy").vs_legacy["lam"]), 3),
        "lam_vs_gbt": round(float(policies.set_index("policy").vs_gbt["lam"]), 3),
        "lam_of_oracle": round(float(policies.set_index("policy").of_oracle["lam"]), 3),
        "stacked_vs_gbt": round(float(policies.set_index("policy").vs_gbt[STACKED]), 3),
        "ndcg@10": round(result["next_action"]["lam"]["ndcg@10"], 4),
        "auc": round(campaign["lam"]["auc"], 4),
        "qini_coefficient": round(campaign["lam"]["qini_coefficient"], 5),
    }


def _plot(folder: Path, result: dict, policies: pd.DataFrame, curves: dict, bins: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(policies.policy, policies.order_rate, color=["#999"] * 2 + ["#6a8", "#8b9", "#c63", "#36c", "#aac"])
    ax.set_ylabel("order rate of the top-K list")
    ax.set_title(f"Held-out order rate, K = {result['capacity']}")
    ax.tick_params(axis="x", labelrotation=20)
    _save(fig, folder / "policies.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(curve.fraction, curve.qini, label=name)
    last = curves["lam"].qini.iloc[-1]
    ax.plot([0, 1], [0, last], "k--", label="random targeting")
    ax.set_xlabel("share of customers targeted (by predicted uplift)")
    ax.set_ylabel("incremental orders (Qini)")
    ax.legend()
    _save(fig, folder / "qini.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(curve.fraction, curve.uplift_curve, label=name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("share of customers targeted (by predicted uplift)")
    ax.set_ylabel("incremental orders (uplift gain)")
    ax.set_title("Gain: (order rate contacted - held out) x targeted")
    ax.legend()
    _save(fig, folder / "gain.png")

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    top = max(max(b.predicted.max(), b.observed.max()) for b in bins.values())
    ax.plot([0, top], [0, top], "k--", label="perfect")
    for name, table in bins.items():
        ax.plot(table.predicted, table.observed, "o-", label=name)
    ax.set_xlabel("predicted P(order) for the arm received")
    ax.set_ylabel("observed order rate")
    ax.legend()
    _save(fig, folder / "calibration.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    na = result["next_action"]
    ks = [k.split("@")[1] for k in na["lam"] if k.startswith("hr@")]
    width = 0.38
    for i, name in enumerate(("lam", "popularity")):
        ax.bar([j + i * width for j in range(len(ks))], [na[name][f"hr@{k}"] for k in ks], width, label=name)
    ax.set_xticks([j + width / 2 for j in range(len(ks))], [f"HR@{k}" for k in ks])
    ax.set_title(f"Next object, full ranking over {na['items']} items")
    ax.legend()
    _save(fig, folder / "next_action.png")


def _metrics_table(rows: dict[str, dict]) -> str:
    keys = list(dict.fromkeys(k for values in rows.values() for k, v in values.items() if isinstance(v, float)))

    def cell(value) -> str:
        return f"<td>{value:.4f}</td>" if isinstance(value, float) else "<td>-</td>"

    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(cell(values.get(k)) for k in keys) + "</tr>"
        for name, values in rows.items()
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _page(result: dict, policies: pd.DataFrame) -> str:
    na = result["next_action"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>LAM evaluation {result["model_version"]}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}td,th{{padding:2px 8px;text-align:right}}
pre{{background:#f4f4f4;padding:8px}}</style></head><body>
<h1>LAM evaluation: {html.escape(result["model_version"])}</h1>
<h2>Policy comparison (held-out period, top {result["capacity"]})</h2>
<p>Order rate = expected share of called customers who order, from the simulator's ground truth.
<code>informed_ceiling</code> is the oracle that knows each customer's responsiveness only as far as the
results of their earlier calls (answered, refused, unreachable) reveal it: the best a model of the event stream
can reach.</p>
<pre>{html.escape(format_table(policies))}</pre><img src="policies.png" alt="policy order rates">
<h2>Campaign response and uplift (randomized held-out trial)</h2>
{_metrics_table(result["campaign_response"])}
<img src="gain.png" alt="gain curves"> <img src="qini.png" alt="Qini curves">
<img src="calibration.png" alt="calibration">
<h2>Next action ({na["customers"]} customers, full ranking over {na["items"]} objects,
exclude seen: {na["exclude_seen"]})</h2>
{_metrics_table({"lam": na["lam"], "popularity": na["popularity"]})}
<img src="next_action.png" alt="next action hit rates">
</body></html>
"""
