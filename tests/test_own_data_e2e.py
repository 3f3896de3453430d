"""A team's own data end to end, with no simulator anywhere: a slice of the real Online Retail II event log.

ingest -> materialize -> pretrain -> finetune --target purchase_30d -> finetune (campaign head) -> score
--target -> /v1/score -> evaluate, each through the CLI, in a fresh Python process that is then checked
for simulator modules. The log has no campaigns, so the slice gets a contact log whose treatment is a
coin flip (a placebo: contacting changed nothing), with outcomes derived from the real purchases: the
campaign evaluation must run on randomized controls, and its observed uplift is noise around zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lam_platform.core.packaged import job_config_path

PROJECT = Path(__file__).resolve().parents[1]
RETAIL = PROJECT.parent / "shared" / "data" / "online_retail_ii" / "online_retail_ii_2009_2010.parquet"
TINY_JOB = job_config_path("tiny")
AS_OF = "2010-10-01T00:00:00+00:00"

EXAMPLE_CONFIG = PROJECT / "infra" / "examples" / "online_retail_ii.yaml"  # the README's lam.yaml for this log

DRIVER = """
import json, sys
from click.testing import CliRunner
from fastapi.testclient import TestClient
from lam_platform.cli.main import main
from lam_platform.service.app import create_app
from lam_platform.service.auth import parse_tokens
from lam_platform.service.settings import ServiceSettings
from lam_platform.core.workdir import Workdir

workdir, as_of, job = sys.argv[1:4]
out = {}

def lam(name, *args):
    result = CliRunner().invoke(main, [*args, "--workdir", workdir, "--json"], catch_exceptions=False)
    out[name] = {"exit_code": result.exit_code, "output": result.output[-2000:]}
    objects = [line for line in result.output.splitlines() if line.startswith("{")]  # Ray may log after it
    if result.exit_code == 0 and objects:
        out[name]["json"] = json.loads(objects[-1])

lam("ingest", "ingest")
lam("materialize", "materialize", "--as-of", as_of)
lam("pretrain", "pretrain", "--as-of", as_of, "--config", job)
lam("finetune", "finetune", "--target", "purchase_30d", "--as-of", as_of, "--config", job)
lam("finetune_campaign", "finetune", "--as-of", as_of, "--config", job)
lam("score", "score", "--target", "purchase_30d", "--as-of", as_of)
lam("call_list", "score", "--as-of", as_of)
scored = out["score"]["json"]["scores"]
import pandas as pd
ids = pd.read_parquet(scored).customer_id.head(3).tolist()
token = "retail-test-token-0123456789"
settings = ServiceSettings.from_workdir(Workdir.at(workdir), clock=__import__("pandas").Timestamp(as_of))
with TestClient(create_app(settings, parse_tokens([{"name": "t", "token": token, "scopes": ["score", "call-list"]}],
                                                  "test"))) as client:
    headers = {"Authorization": f"Bearer {token}"}
    answer = client.post("/v1/score", json={"customer_ids": ids}, headers=headers)
    out["v1_score"] = {"status": answer.status_code, "body": answer.json()}
    refused = client.post("/v1/call-list", json={"capacity": 5}, headers=headers)
    out["v1_call_list"] = {"status": refused.status_code, "body": refused.json()}
lam("evaluate", "evaluate", "--as-of", as_of, "--config", job)
lam("report", "report", "--as-of", as_of, "--config", job)
out["simulator_modules"] = sorted(m for m in sys.modules if m.startswith("lam_platform.simulation"))
print("RESULT " + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def retail_slice(tmp_path_factory) -> Path:
    """A few hundred real customers: every 30th identified customer of the year, all their invoice lines."""
    if not RETAIL.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{RETAIL} is missing: CI runs with shared/ beside the clone")
        pytest.skip(f"{RETAIL} not found (shared/ beside the clone)")
    frame = pd.read_parquet(RETAIL)
    chosen = sorted(frame["Customer ID"].dropna().unique())[::30]
    workdir = tmp_path_factory.mktemp("retail") / "workdir"
    (workdir / "raw").mkdir(parents=True)
    frame[frame["Customer ID"].isin(chosen)].to_parquet(workdir / "raw" / "retail.parquet", index=False)
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["events"]["channels"]["shop"]["files"] = ["raw/retail.parquet"]
    rng = np.random.default_rng(0)
    contacts = pd.DataFrame({"customer": np.repeat(chosen, 3)})
    contacts["at"] = (
        pd.Timestamp("2010-04-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 220 * 24, len(contacts)), unit="h")
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    contacts["offer"] = rng.choice(["voucher", "catalogue"], len(contacts))
    contacts["method"] = rng.choice(["email", "call"], len(contacts))
    contacts["treated"] = (rng.random(len(contacts)) < 0.5).astype(int)  # randomized: a coin flip per contact
    contacts["customer"] = contacts.customer.map(lambda c: repr(float(c)))  # as ingestion reads the log's float ids
    contacts.to_csv(workdir / "raw" / "contacts.csv", index=False)
    config["campaigns"] = {
        "files": ["raw/contacts.csv"],
        "who": "customer",
        "contacted_at": "at",
        "offer": "offer",
        "method": "method",
        "treatment": "treated",
        "outcome": {"action": "purchase", "within": "14d"},
    }
    config["catalogue"] = {"offers": ["voucher", "catalogue"], "methods": ["email", "call"]}
    (workdir / "lam.yaml").write_text(yaml.safe_dump(config))
    return workdir


@pytest.mark.e2e
@pytest.mark.realdata
def test_a_real_event_log_runs_end_to_end_without_the_simulator(retail_slice):
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, str(retail_slice), AS_OF, str(TINY_JOB)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    for step in ("ingest", "materialize", "pretrain", "finetune", "finetune_campaign", "score", "evaluate", "report"):
        assert out[step]["exit_code"] == 0, (step, out[step]["output"])

    events = out["ingest"]["json"]["events"]
    assert events["balanced"] and events["accepted"] > 0 and events["quarantined"] == 0
    assert out["materialize"]["json"]["as_of"] == AS_OF
    assert out["finetune"]["json"]["head"] == "purchase_30d"
    # Every training label was mature at the as-of time: the newest cut-off is at least 30 days before it.
    assert max(pd.Timestamp(t) for t in out["finetune"]["json"]["cutoffs"]) <= pd.Timestamp(AS_OF) - pd.Timedelta(
        days=30
    )
    assert out["score"]["json"]["scored"] > 0

    # Consent is analysis only: target scores yes, a contact list never (CLI: exit 2 naming why; API: 409).
    assert out["call_list"]["exit_code"] == 2 and "analysis_only" in out["call_list"]["output"]
    assert out["v1_call_list"]["status"] == 409
    assert out["v1_score"]["status"] == 200
    customers = out["v1_score"]["body"]["customers"]
    assert [c["status"] for c in customers] == ["scored"] * len(customers)
    assert all(0 < c["targets"]["purchase_30d"] < 1 and c["campaigns"] == [] for c in customers)

    evaluation = out["evaluate"]["json"]
    (target,) = evaluation["targets"]  # churn_60d has no head: skipped, with the reason
    assert [s["target"] for s in evaluation["skipped"]] == ["churn_60d"]
    assert target["target"] == "purchase_30d" and target["as_of"] == AS_OF and target["customers"] > 50
    assert 0 < target["base_rate"] < 1
    assert set(target["models"]) == {"lam", "lightgbm_aggregates", "recency"}
    for scores in target["models"].values():
        assert 0 <= scores["auc"] <= 1 and 0 <= scores["top_decile_precision"] <= 1
    assert evaluation["next_item"]["customers"] > 0
    campaigns = evaluation["campaigns"]  # contacts after the as-of time, with mature outcomes, both arms
    assert campaigns["as_of"] == AS_OF and campaigns["contacts"] > 50 and campaigns["controls"] > 10
    assert campaigns["training_contacts"] > 0 and abs(campaigns["observed_uplift"]) < 0.2
    assert set(campaigns["models"]) == {"lam", "lightgbm_aggregates"}
    for scores in campaigns["models"].values():
        assert 0 <= scores["auc"] <= 1 and np.isfinite(scores["qini_coefficient"]) and np.isfinite(scores["auuc"])

    report = out["report"]["json"]  # the page on own data: the evaluation after T; no call list (analysis only)
    page = Path(report["page"]).read_text()
    assert {"holdout_auc.png", "events_per_channel.png", "training_purchase_30d.png"} <= set(report["images"])
    assert "purchase_30d" in page and "campaign_response" in page and "analysis-only" in page
    assert all((Path(report["page"]).parent / image).stat().st_size > 0 for image in report["images"])

    assert out["simulator_modules"] == []  # no simulator module was imported on the real-data path
