"""`lam report`: one static HTML page with PNG plots for the people who plan and review campaigns.

Run: `lam report --workdir ./lam-demo` (a simulated world, after `lam score`) or `lam report --workdir W
--as-of T` (a team's own data). Writes WORKDIR/outputs/report/index.html with data overview (events per
channel, sequence lengths) and training curves of the model's heads; then the evaluation: on a simulated
world the ground-truth plots (gain, Qini, calibration, next action) and policy table of `lam evaluate`, on
own data the `lam evaluate --as-of T` comparison (each target and the campaign log: LAM vs LightGBM on
aggregates and recency, next item vs popularity); and, where a call list exists, timelines of its first
customers with the events that drove their scores, its fairness table (also as fairness.json), and the
closed-loop rounds if any.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import events_dataset
from lam_platform.evaluation.plots import save_figure as _save
from lam_platform.features.store import online_features, open_store
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version

EVALUATION_PLOTS = ("policies.png", "gain.png", "qini.png", "calibration.png", "next_action.png")


def build_report(workdir: Workdir, evaluation: dict, fairness: dict, policy_table: str, examples: int = 3) -> dict:
    """The simulated world's page: from an evaluation (`lam evaluate`'s result: its JSON and plots in
    outputs/evaluation/) and a fairness report; returns the page's path."""
    call_list_path = workdir.call_list
    if not call_list_path.exists():
        raise FileNotFoundError(f"no call list at {call_list_path}: run `lam score --workdir {workdir.root}` first")
    folder = _report_folder(workdir)
    for name in EVALUATION_PLOTS:
        shutil.copy(workdir.outputs / "evaluation" / name, folder / name)
    result = json.loads(Path(evaluation["evaluation"]).read_text())
    artifact = ModelArtifact(latest_version(workdir.artifacts, "campaign_response"))
    return _write_page(workdir, folder, artifact, _ground_truth_section(result, policy_table), fairness, examples)


def build_holdout_report(workdir: Workdir, holdout: dict, fairness: dict | None, examples: int = 3) -> dict:
    """A team's own data: the page from `evaluate_holdout`'s result (what happened after --as-of T), and the
    call list with its fairness where one was built (never in an analysis-only workdir)."""
    folder = _report_folder(workdir)
    artifact = ModelArtifact(latest_version(workdir.artifacts))
    return _write_page(workdir, folder, artifact, _holdout_section(holdout, folder), fairness, examples)


def _report_folder(workdir: Workdir) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    folder = workdir.outputs / "report"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_page(
    workdir: Workdir, folder: Path, artifact: ModelArtifact, evaluation_html: str, fairness: dict | None, examples: int
) -> dict:
    overview = _data_overview(workdir, folder)
    curves = _training_curves(artifact, folder)
    call_list_path = workdir.call_list
    call_list = pd.read_parquet(call_list_path) if call_list_path.exists() else None
    timelines = _timelines(workdir, call_list.head(examples), folder) if call_list is not None else []
    if fairness is not None:
        (folder / "fairness.json").write_text(json.dumps(fairness, indent=2, default=str))
    rounds_file = workdir.outputs / "closed_loop" / "rounds.json"
    loop = json.loads(rounds_file.read_text()) if rounds_file.exists() else None
    page = _page(artifact.path.name, overview, curves, evaluation_html, call_list, timelines, loop, fairness)
    (folder / "index.html").write_text(page)
    return {
        "page": str(folder / "index.html"),
        "model_version": artifact.path.name,
        "images": sorted(p.name for p in folder.glob("*.png")),
    }


def _data_overview(workdir: Workdir, folder: Path) -> dict:
    import matplotlib.pyplot as plt

    events = events_dataset(workdir.events)
    per_channel = events.to_table(columns=["channel"]).column("channel").value_counts().to_pylist()
    channels = pd.Series({d["values"]: d["counts"] for d in per_channel}).sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(channels.index, channels.to_numpy(), color="#36c")
    ax.set_ylabel("events")
    ax.set_yscale("log")
    ax.set_title("Events per channel")
    _save(fig, folder / "events_per_channel.png")

    snapshot = sorted(workdir.sequences.glob("*.parquet"))[-1]
    lengths = (
        pc.list_value_length(ds.dataset(snapshot).to_table(columns=["event_timestamps"]).column("event_timestamps"))
        .fill_null(0)
        .to_numpy()
    )
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(lengths, bins=30, color="#6a8")
    ax.set_xlabel("events in the online sequence (capped at the view's N)")
    ax.set_ylabel("customers")
    ax.set_title("Sequence lengths")
    _save(fig, folder / "sequence_lengths.png")
    return {
        "events": int(channels.sum()),
        "channels": channels.to_dict(),
        "customers": int(len(lengths)),
        "median_length": float(pd.Series(lengths).median()),
    }


def _training_curves(artifact: ModelArtifact, folder: Path) -> list[str]:
    """One plot per head (pretraining lives in the base version when fine-tuning made a new one)."""
    import matplotlib.pyplot as plt

    drawn = []
    for head in dict.fromkeys(("next_action", *artifact.card.get("heads", {}))):
        owner = artifact.with_head(head)
        history = owner.card["heads"].get(head, {}).get("history") or []
        if not history:
            continue
        frame = pd.DataFrame(history)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for column in [c for c in ("train_loss", "val_loss") if c in frame.columns]:  # the two curves to compare
            ax.plot(frame.epoch + 1, frame[column], "o-", label=column)
        metrics = owner.card["heads"][head].get("metrics", {})
        kept = metrics.get("kept_epoch", metrics.get("best_epoch"))  # the epoch whose weights the artifact has
        if kept is not None:
            ax.axvline(kept + 1, color="grey", linestyle=":", label="kept epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"{head} ({owner.path.name})")
        ax.legend()
        name = f"training_{head}.png"
        _save(fig, folder / name)
        drawn.append(name)
    return drawn


def _timelines(workdir: Workdir, call_list: pd.DataFrame, folder: Path) -> list[dict]:
    """A timeline plot per customer: the last 30 days of events by channel, driving events ringed."""
    import matplotlib.pyplot as plt

    rows = online_features(open_store(workdir), call_list.customer_id.tolist()).set_index("customer_id")
    shown = []
    for i, entry in enumerate(call_list.itertuples()):
        row = rows.loc[entry.customer_id]
        events = pd.DataFrame(
            {
                "ts": pd.to_datetime(list(row.event_timestamps), utc=True),
                "channel": list(row.channels),
                "action": list(row.actions),
                "object": list(row.objects),
            }
        )
        recent = events[events.ts > events.ts.max() - pd.Timedelta(days=30)]
        driving = pd.DataFrame(json.loads(entry.driving_events)) if entry.driving_events else pd.DataFrame()
        channels = sorted(events.channel.unique())
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.scatter(recent.ts, recent.channel.map(channels.index), s=14, color="#888", label="event")
        if len(driving):
            marked = pd.to_datetime(driving.timestamp, utc=True)
            ax.scatter(
                marked,
                driving.channel.map(channels.index),
                s=120,
                facecolors="none",
                edgecolors="#c63",
                linewidths=2,
                label="drove the score",
            )
        ax.set_yticks(range(len(channels)), channels)
        ax.set_title(f"#{entry.rank} {entry.customer_id}: {entry.offer} by {entry.method}")
        ax.legend(loc="upper left", fontsize=7)
        name = f"timeline_{i + 1}.png"
        _save(fig, folder / name)
        shown.append(
            {
                "customer_id": entry.customer_id,
                "rank": int(entry.rank),
                "offer": entry.offer,
                "method": entry.method,
                "uplift": float(entry.uplift),
                "reason": entry.reason,
                "driving": driving.to_dict("records"),
                "image": name,
            }
        )
    return shown


def _fairness_section(report: dict) -> str:
    rows = []
    for attribute, groups in report["attributes"].items():
        for g in groups:
            flags = ", ".join(k for k in ("four_fifths", "calibration") if g[f"{k}_flag"])
            observed = "-" if g["observed_order_rate"] is None else f"{g['observed_order_rate']:.3f}"
            predicted = "-" if g["predicted_order_rate"] is None else f"{g['predicted_order_rate']:.3f}"
            rows.append(
                f"<tr><td>{html.escape(attribute)}</td><td>{html.escape(g['group'])}</td><td>{g['eligible']}</td>"
                f"<td>{g['selected']}</td><td>{g['selection_rate']:.3f}</td><td>{(g['ratio_to_best'] or 0):.2f}</td>"
                f"<td>{predicted}</td><td>{observed}</td><td><b>{html.escape(flags)}</b></td></tr>"
            )
    return (
        "<h2>Fairness of the call list</h2><p>Selection rate by group against the eligible (consenting) base; "
        "flag four_fifths: below 80% of the best group's rate; flag calibration: the group's predicted - observed "
        f"order rate differs from the list's by more than {report['calibration_margin']}. "
        f"{len(report['flags'])} flag(s).</p><table><tr><th>attribute</th><th>group</th><th>eligible</th>"
        "<th>selected</th><th>selection rate</th><th>vs best</th><th>predicted</th><th>observed</th><th>flags</th>"
        f"</tr>{''.join(rows)}</table>"
    )


def _loop_section(rounds: list[dict] | None) -> str:
    if not rounds:
        return ""
    table = pd.DataFrame(rounds)[
        [
            "round",
            "model_version",
            "called",
            "held_out",
            "order_rate_called",
            "expected_order_rate_called",
            "updated_to",
        ]
    ]
    return (
        "<h2>Closed loop: order rate per round</h2><p>Each round calls the list of the newest model version; "
        "its outcomes update the campaign head for the next round.</p>"
        f"<pre>{html.escape(table.to_string(index=False, float_format=lambda v: f'{v:.3f}'))}</pre>"
    )


def _ground_truth_section(result: dict, policy_table: str) -> str:
    """The simulator's evaluation: the campaign head on a randomized trial drawn from the ground truth, and
    the policy table."""
    e = html.escape
    campaign = result["campaign_response"]["lam"]
    return f"""<h2>Evaluation (held-out period, simulator ground truth)</h2>
<p>Campaign head on a randomized held-out trial: AUC {campaign["auc"]:.3f}, Qini coefficient
{campaign["qini_coefficient"]:.5f}, ECE {campaign["expected_calibration_error"]:.4f}.</p>
<img src="gain.png" alt="gain curves"> <img src="qini.png" alt="Qini curves">
<img src="calibration.png" alt="calibration"> <img src="next_action.png" alt="next action hit rates">
<h2>Policy comparison (top {result["capacity"]})</h2>
<pre>{e(policy_table)}</pre><img src="policies.png" alt="policy order rates">"""


def _holdout_section(holdout: dict, folder: Path) -> str:
    """Per target and for the campaign log: the LAM against LightGBM on aggregates (and recency), measured on
    what happened after the as-of time; a bar plot of the AUCs."""
    import matplotlib.pyplot as plt

    e = html.escape
    compared = [
        (t["target"], t["models"], f"{t['customers']:,} customers, base rate {t['base_rate']}")
        for t in holdout["targets"]
    ]
    if holdout.get("campaigns"):
        c = holdout["campaigns"]
        compared.append(
            (
                "campaign_response",
                c["models"],
                f"{c['contacts']:,} contacts ({c['controls']:,} controls), observed uplift {c['observed_uplift']}",
            )
        )
    parts = [f"<h2>Evaluation on what happened after {e(holdout['as_of'])}</h2>"]
    for name, models, about in compared:
        columns = list(dict.fromkeys(k for values in models.values() for k in values))
        rows = "".join(
            f"<tr><td>{e(model)}</td>" + "".join(f"<td>{values.get(k, '-')}</td>" for k in columns) + "</tr>"
            for model, values in models.items()
        )
        parts.append(
            f"<h3>{e(name)}: {e(about)}</h3><table><tr><th>model</th>"
            + "".join(f"<th>{e(k)}</th>" for k in columns)
            + f"</tr>{rows}</table>"
        )
    if compared:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        models = list(dict.fromkeys(m for _, ms, _ in compared for m in ms))
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            ax.bar(
                [k + i * width for k in range(len(compared))],
                [ms.get(model, {}).get("auc", 0) for _, ms, _ in compared],
                width,
                label=model,
            )
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(compared))], [n for n, _, _ in compared])
        ax.axhline(0.5, color="#999", linewidth=1)
        ax.set_ylabel("AUC")
        ax.set_title("AUC after the as-of time")
        ax.legend(fontsize=7)
        _save(fig, folder / "holdout_auc.png")
        parts.append('<img src="holdout_auc.png" alt="AUC per target and model">')
    for skipped in holdout["skipped"]:
        parts.append(f"<p>{e(skipped['target'])}: not evaluated: {e(skipped['reason'])}</p>")
    if holdout.get("next_item"):
        n = holdout["next_item"]
        parts.append(
            f"<h3>Next item ({n['customers']:,} customers, full ranking of {n['items']:,} items)</h3>"
            f"<p>LAM HR@10 {n['lam']['hr@10']:.4f}, NDCG@10 {n['lam']['ndcg@10']:.4f}; popularity HR@10 "
            f"{n['popularity']['hr@10']:.4f}, NDCG@10 {n['popularity']['ndcg@10']:.4f}.</p>"
        )
    return "\n".join(parts)


def _page(
    version: str,
    overview: dict,
    curves: list[str],
    evaluation_html: str,
    call_list: pd.DataFrame | None,
    timelines: list[dict],
    loop: list[dict] | None,
    fairness: dict | None,
) -> str:
    e = html.escape
    training = (
        "".join(f'<img src="{name}" alt="training curve {e(name)}">' for name in curves)
        or "<p>No per-epoch history in this model's card (trained before histories were recorded).</p>"
    )
    examples = "".join(
        f"<h3>#{t['rank']} {e(t['customer_id'])}: {e(t['offer'])} by {e(t['method'])}, uplift {t['uplift']:.3f}</h3>"
        f'<p><b>Why:</b> {e(str(t["reason"]))}</p><img src="{t["image"]}" alt="timeline of {e(t["customer_id"])}">'
        + "<table><tr><th>time</th><th>channel</th><th>action</th><th>object</th><th>attribution</th></tr>"
        + "".join(
            f"<tr><td>{e(d['timestamp'])}</td><td>{e(d['channel'])}</td><td>{e(d['action'])}</td>"
            f"<td>{e(d['object'])}</td><td>{d['attribution']:.4f}</td></tr>"
            for d in t["driving"]
        )
        + "</table>"
        for t in timelines
    )
    if call_list is None:
        call_list_html = (
            "<h2>Call list</h2><p>None in this workdir: `lam score` builds one where lam.yaml allows "
            "contact (never in an analysis-only workdir).</p>"
        )
    else:
        call_list_html = (
            f"<h2>Call list: the first {len(timelines)} of {len(call_list)} customers, and why</h2>"
            "<p>Driving events: integrated gradients of the best campaign's uplift over the event "
            f"embeddings.</p>{examples}"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>LAM report {e(version)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}
pre{{background:#f4f4f4;padding:8px}}img{{max-width:100%}}</style></head><body>
<h1>LAM report: model {e(version)}</h1>
<h2>Data</h2>
<p>{overview["events"]:,} events from {len(overview["channels"])} channels; {overview["customers"]:,} customers in
the online sequence view, median {overview["median_length"]:.0f} events each.</p>
<img src="events_per_channel.png" alt="events per channel"> <img src="sequence_lengths.png" alt="sequence lengths">
<h2>Training</h2>
{training}
{evaluation_html}
{_loop_section(loop)}
{_fairness_section(fairness) if fairness is not None else ""}
{call_list_html}
</body></html>
"""
