"""`lam report`: one static HTML page with PNG plots for the people who plan and review campaigns.

Run: `lam report --workdir ./lam-demo` (after `lam score`). Writes WORKDIR/outputs/report/index.html with
data overview (events per channel, sequence lengths), training curves of the served model's heads,
the evaluation plots (gain, Qini, calibration, next action) and policy table from `lam evaluate`, and
timelines of the first customers on the call list with the events that drove their scores, the
fairness table of the call list (also as fairness.json), and the closed-loop rounds if any.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lam_platform.events import events_dataset
from lam_platform.features import online_features, open_store
from lam_platform.plots import save_figure as _save
from lam_platform.workdir import Workdir
from lightning_modules.artifact import ModelArtifact, latest_version

EVALUATION_PLOTS = ("policies.png", "gain.png", "qini.png", "calibration.png", "next_action.png")


def build_report(workdir: Workdir, evaluation: dict, fairness: dict, policy_table: str, examples: int = 3) -> dict:
    """Draw every plot and write the page from an evaluation (`lam evaluate`'s result: its JSON and plots in
    outputs/evaluation/) and a fairness report; returns the page's path."""
    call_list_path = workdir.outputs / "call_list.parquet"
    if not call_list_path.exists():
        raise FileNotFoundError(f"no call list at {call_list_path}: run `lam score --workdir {workdir.root}` first")
    import matplotlib

    matplotlib.use("Agg")
    folder = workdir.outputs / "report"
    folder.mkdir(parents=True, exist_ok=True)
    for name in EVALUATION_PLOTS:
        shutil.copy(workdir.outputs / "evaluation" / name, folder / name)
    result = json.loads(Path(evaluation["evaluation"]).read_text())
    overview = _data_overview(workdir, folder)
    artifact = ModelArtifact(latest_version(workdir.artifacts, "campaign_response"))
    curves = _training_curves(artifact, folder)
    call_list = pd.read_parquet(call_list_path)
    timelines = _timelines(workdir, call_list.head(examples), folder)
    (folder / "fairness.json").write_text(json.dumps(fairness, indent=2, default=str))
    rounds_file = workdir.outputs / "closed_loop" / "rounds.json"
    loop = json.loads(rounds_file.read_text()) if rounds_file.exists() else None
    page = _page(artifact.path.name, overview, curves, result, policy_table, call_list, timelines, loop, fairness)
    (folder / "index.html").write_text(page)
    return {"page": str(folder / "index.html"), "model_version": artifact.path.name,
            "images": sorted(p.name for p in folder.glob("*.png"))}


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
    lengths = pc.list_value_length(ds.dataset(snapshot).to_table(columns=["event_timestamps"])
                                   .column("event_timestamps")).fill_null(0).to_numpy()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(lengths, bins=30, color="#6a8")
    ax.set_xlabel("events in the online sequence (capped at the view's N)")
    ax.set_ylabel("customers")
    ax.set_title("Sequence lengths")
    _save(fig, folder / "sequence_lengths.png")
    return {"events": int(channels.sum()), "channels": channels.to_dict(), "customers": int(len(lengths)),
            "median_length": float(pd.Series(lengths).median())}


def _training_curves(artifact: ModelArtifact, folder: Path) -> list[str]:
    """One plot per head (pretraining lives in the base version when fine-tuning made a new one)."""
    import matplotlib.pyplot as plt

    drawn = []
    for head in ("next_action", "campaign_response"):
        owner = artifact.with_head(head)
        history = owner.card["heads"].get(head, {}).get("history") or []
        if not history:
            continue
        frame = pd.DataFrame(history)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for column in [c for c in frame.columns if c.endswith("loss")]:
            ax.plot(frame.epoch + 1, frame[column], "o-", label=column)
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
        events = pd.DataFrame({"ts": pd.to_datetime(list(row.event_timestamps), utc=True),
                               "channel": list(row.channels), "action": list(row.actions),
                               "object": list(row.objects)})
        recent = events[events.ts > events.ts.max() - pd.Timedelta(days=30)]
        driving = pd.DataFrame(json.loads(entry.driving_events)) if entry.driving_events else pd.DataFrame()
        channels = sorted(events.channel.unique())
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.scatter(recent.ts, recent.channel.map(channels.index), s=14, color="#888", label="event")
        if len(driving):
            marked = pd.to_datetime(driving.timestamp, utc=True)
            ax.scatter(marked, driving.channel.map(channels.index), s=120, facecolors="none", edgecolors="#c63",
                       linewidths=2, label="drove the score")
        ax.set_yticks(range(len(channels)), channels)
        ax.set_title(f"#{entry.rank} {entry.customer_id}: {entry.offer} by {entry.method}")
        ax.legend(loc="upper left", fontsize=7)
        name = f"timeline_{i + 1}.png"
        _save(fig, folder / name)
        shown.append({"customer_id": entry.customer_id, "rank": int(entry.rank), "offer": entry.offer,
                      "method": entry.method, "uplift": float(entry.uplift), "reason": entry.reason,
                      "driving": driving.to_dict("records"), "image": name})
    return shown


def _fairness_section(report: dict) -> str:
    rows = []
    for attribute, groups in report["attributes"].items():
        for g in groups:
            flags = ", ".join(k for k in ("four_fifths", "calibration") if g[f"{k}_flag"])
            observed = "-" if g["observed_order_rate"] is None else f"{g['observed_order_rate']:.3f}"
            predicted = "-" if g["predicted_order_rate"] is None else f"{g['predicted_order_rate']:.3f}"
            rows.append(f"<tr><td>{html.escape(attribute)}</td><td>{html.escape(g['group'])}</td><td>{g['eligible']}</td>"
                        f"<td>{g['selected']}</td><td>{g['selection_rate']:.3f}</td><td>{(g['ratio_to_best'] or 0):.2f}</td>"
                        f"<td>{predicted}</td><td>{observed}</td><td><b>{html.escape(flags)}</b></td></tr>")
    return ("<h2>Fairness of the call list</h2><p>Selection rate by group against the eligible (consenting) base; "
            "flag four_fifths: below 80% of the best group's rate; flag calibration: the group's predicted - observed "
            f"order rate differs from the list's by more than {report['calibration_margin']}. "
            f"{len(report['flags'])} flag(s).</p><table><tr><th>attribute</th><th>group</th><th>eligible</th>"
            "<th>selected</th><th>selection rate</th><th>vs best</th><th>predicted</th><th>observed</th><th>flags</th>"
            f"</tr>{''.join(rows)}</table>")


def _loop_section(rounds: list[dict] | None) -> str:
    if not rounds:
        return ""
    table = pd.DataFrame(rounds)[["round", "model_version", "called", "held_out", "order_rate_called",
                                  "expected_order_rate_called", "updated_to"]]
    return ("<h2>Closed loop: order rate per round</h2><p>Each round calls the list of the newest model version; "
            "its outcomes update the campaign head for the next round.</p>"
            f"<pre>{html.escape(table.to_string(index=False, float_format=lambda v: f'{v:.3f}'))}</pre>")


def _page(version: str, overview: dict, curves: list[str], result: dict, policy_table: str, call_list: pd.DataFrame,
          timelines: list[dict], loop: list[dict] | None, fairness: dict) -> str:
    e = html.escape
    campaign = result["campaign_response"]["lam"]
    training = "".join(f'<img src="{name}" alt="training curve {e(name)}">' for name in curves) or \
        "<p>No per-epoch history in this model's card (trained before histories were recorded).</p>"
    examples = "".join(
        f'<h3>#{t["rank"]} {e(t["customer_id"])}: {e(t["offer"])} by {e(t["method"])}, uplift {t["uplift"]:.3f}</h3>'
        f'<p><b>Why:</b> {e(str(t["reason"]))}</p><img src="{t["image"]}" alt="timeline of {e(t["customer_id"])}">'
        + "<table><tr><th>time</th><th>channel</th><th>action</th><th>object</th><th>attribution</th></tr>"
        + "".join(f'<tr><td>{e(d["timestamp"])}</td><td>{e(d["channel"])}</td><td>{e(d["action"])}</td>'
                  f'<td>{e(d["object"])}</td><td>{d["attribution"]:.4f}</td></tr>' for d in t["driving"])
        + "</table>" for t in timelines)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>LAM report {e(version)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}
pre{{background:#f4f4f4;padding:8px}}img{{max-width:100%}}</style></head><body>
<h1>LAM report: model {e(version)}</h1>
<h2>Data</h2>
<p>{overview['events']:,} events from {len(overview['channels'])} channels; {overview['customers']:,} customers in
the online sequence view, median {overview['median_length']:.0f} events each.</p>
<img src="events_per_channel.png" alt="events per channel"> <img src="sequence_lengths.png" alt="sequence lengths">
<h2>Training</h2>
{training}
<h2>Evaluation (held-out period)</h2>
<p>Campaign head on a randomized held-out trial: AUC {campaign['auc']:.3f}, Qini coefficient
{campaign['qini_coefficient']:.5f}, ECE {campaign['expected_calibration_error']:.4f}.</p>
<img src="gain.png" alt="gain curves"> <img src="qini.png" alt="Qini curves">
<img src="calibration.png" alt="calibration"> <img src="next_action.png" alt="next action hit rates">
<h2>Policy comparison (top {result['capacity']})</h2>
<pre>{e(policy_table)}</pre><img src="policies.png" alt="policy order rates">
{_loop_section(loop)}
{_fairness_section(fairness)}
<h2>Call list: the first {len(timelines)} of {len(call_list)} customers, and why</h2>
<p>Driving events: integrated gradients of the best campaign's uplift over the event embeddings.</p>
{examples}
</body></html>
"""
