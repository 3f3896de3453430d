"""The scoring service in process (FastAPI TestClient) on the tiny world's SQLite online store."""

from __future__ import annotations

import itertools
import json

import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient

from lam_platform.campaigns.call_list import next_contact_time
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.cli.main import main as cli_main
from lam_platform.data.clock import ClockError
from lam_platform.features.store import online_features, open_store
from lam_platform.governance.fairness import call_list_fairness
from lam_platform.lightning_modules.artifact import ModelArtifact
from lam_platform.service.app import app_from_env, create_app
from lam_platform.service.auth import TokenConfigError, load_tokens, parse_tokens
from lam_platform.service.model import PRIOR_STRENGTH, PopulationPrior
from lam_platform.service.schemas import FairnessReport
from lam_platform.service.settings import ServiceConfigError, ServiceSettings, settings_from_env
from lam_platform.simulation.world import load_world_config

SCORER = "scorer-token-0123456789"
CALLER = "caller-token-0123456789"
TOKENS = [
    {"name": "crm", "token": SCORER, "scopes": ["score"]},
    {"name": "ops", "token": CALLER, "scopes": ["call-list"]},
]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def service(trained_world):
    settings = ServiceSettings.from_workdir(
        trained_world, max_customers=50, max_body_bytes=20_000, clock=load_world_config(trained_world).scoring_time
    )
    with TestClient(create_app(settings, parse_tokens(TOKENS, "test"))) as client:
        yield client, trained_world, settings


@pytest.fixture(scope="module")
def customers(trained_world):
    """Consenting customers with events, a customer without consent, and an id nobody has."""
    profiles = pd.read_parquet(trained_world.profiles)
    rows = online_features(open_store(trained_world), profiles.customer_id.tolist())
    has_events = rows.event_timestamps.map(lambda v: v is not None and len(v) > 0)
    consenting = rows.customer_id[has_events & rows.consent_marketing.astype(bool)].tolist()
    refused = rows.customer_id[has_events & ~rows.consent_marketing.astype(bool)].tolist()
    return {"consenting": consenting[:4], "refused": refused[0], "unknown": "c-nobody-knows"}


def test_score_answers_next_actions_campaigns_and_the_best_one_as_batch_scoring_does(service, customers):
    client, world, settings = service
    ids = customers["consenting"][:3]
    response = client.post("/v1/score", json={"customer_ids": ids, "time_slots": [10]}, headers=bearer(SCORER))
    assert response.status_code == 200, response.text
    body = response.json()
    artifact = ModelArtifact(world.artifacts / body["model_version"])
    assert [c["customer_id"] for c in body["customers"]] == ids
    contact = next_contact_time(settings.clock, settings.time_slots[0])
    rows = online_features(open_store(world), ids)
    campaigns = list(itertools.product(artifact.tokenizer.offers, artifact.tokenizer.methods))
    offline = CampaignScorer(artifact).score(rows, contact, campaigns).set_index(["customer_id", "offer", "method"])
    for answer in body["customers"]:
        assert answer["status"] == "scored" and not answer["cold_start"]
        assert len(answer["campaigns"]) == len(campaigns)
        for c in answer["campaigns"]:
            expected = offline.loc[(answer["customer_id"], c["offer"], c["method"])]
            assert c["p_order_if_contacted"] == pytest.approx(expected.p_order_if_called, abs=1e-5)
            assert c["p_order_if_not_contacted"] == pytest.approx(expected.p_order_if_not_called, abs=1e-5)
            assert c["uplift"] == pytest.approx(c["p_order_if_contacted"] - c["p_order_if_not_contacted"], abs=1e-5)
            assert pd.Timestamp(c["time_slot"]) == contact
        assert answer["best_campaign"]["uplift"] == max(c["uplift"] for c in answer["campaigns"])
        actions = answer["next_actions"]
        for key in ("what", "how", "where"):
            probabilities = [p["probability"] for p in actions[key]]
            assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
            assert 0 < sum(probabilities) <= 1 + 1e-6
        assert actions["hours_until_next"] >= 0


def test_the_best_time_slot_is_chosen_among_the_candidates(service, customers):
    client, _, settings = service
    body = client.post(
        "/v1/score",
        json={"customer_ids": customers["consenting"][:1], "time_slots": [9, 13, 18]},
        headers=bearer(SCORER),
    ).json()
    slots = {pd.Timestamp(c["time_slot"]).hour for c in body["customers"][0]["campaigns"]}
    assert slots <= {9, 13, 18}


def test_unknown_customers_and_refusers_get_nothing_and_the_prior_shrinks_each_arm(service, customers):
    client, world, settings = service
    ids = [customers["unknown"], customers["refused"], customers["consenting"][0]]
    response = client.post("/v1/score", json={"customer_ids": ids}, headers=bearer(SCORER))
    assert response.status_code == 200, response.text
    unknown, refused, known = response.json()["customers"]
    # Unknown consent is no consent: a customer the store does not know is not scored for campaigns.
    assert unknown == {**unknown, "status": "excluded", "excluded_reason": "no_consent", "campaigns": []}
    log = pd.read_parquet(world.campaign_log)
    k = PRIOR_STRENGTH
    # The population prior answers a consenting customer without history (none in the tiny world has none).
    prior = PopulationPrior.from_campaign_log(world.campaign_log).campaigns(
        [("plan_change", "sms"), ("device_upgrade", "outbound_call")], pd.Timestamp("2026-06-04T10:00:00Z")
    )
    for c in prior:
        arm = log[(log.offer == c["offer"]) & (log.method == c["method"])]
        for key, treatment in (("p_order_if_contacted", 1), ("p_order_if_not_contacted", 0)):
            mine, everyone = arm.outcome[arm.treatment == treatment], log.outcome[log.treatment == treatment]
            assert c[key] == pytest.approx((mine.sum() + k * everyone.mean()) / (len(mine) + k))
    assert refused == {
        **refused,
        "status": "excluded",
        "excluded_reason": "no_consent",
        "campaigns": [],
        "best_campaign": None,
    }
    assert known["status"] == "scored"


def test_explanations_name_real_past_events_and_a_reason(service, customers):
    client, world, _ = service
    ids = customers["consenting"][:2]
    body = client.post("/v1/score", json={"customer_ids": ids, "explain": True}, headers=bearer(SCORER)).json()
    rows = online_features(open_store(world), ids).set_index("customer_id")
    for answer in body["customers"]:
        explanation = answer["explanation"]
        assert explanation["reason"] and "integrated gradients" in explanation["method"]
        history = {
            (pd.Timestamp(t).isoformat(), ch, a, o)
            for t, ch, a, o in zip(
                rows.loc[answer["customer_id"]].event_timestamps,
                rows.loc[answer["customer_id"]].channels,
                rows.loc[answer["customer_id"]].actions,
                rows.loc[answer["customer_id"]].objects,
            )
        }
        for event in explanation["events"]:
            assert event["attribution"] > 0
            assert (
                pd.Timestamp(event["timestamp"]).isoformat(),
                event["channel"],
                event["action"],
                event["object"],
            ) in history


def test_auth_401_without_a_known_token_403_without_the_scope_and_no_token_echoed(service, customers):
    client, _, _ = service
    body = {"customer_ids": customers["consenting"][:1]}
    assert client.post("/v1/score", json=body).status_code == 401
    assert client.post("/v1/score", json=body, headers=bearer("not-a-token-at-all-xx")).status_code == 401
    forbidden = client.post("/v1/score", json=body, headers=bearer(CALLER))
    assert forbidden.status_code == 403 and "ops" in forbidden.text and CALLER not in forbidden.text
    assert client.post("/v1/call-list", json={"capacity": 3}, headers=bearer(SCORER)).status_code == 403


def test_limits_give_413_and_422_naming_the_field(service, customers):
    client, _, settings = service
    too_many = client.post(
        "/v1/score", json={"customer_ids": [f"c{i}" for i in range(settings.max_customers + 1)]}, headers=bearer(SCORER)
    )
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "customer_ids"]
    huge = client.post("/v1/score", json={"customer_ids": ["x" * settings.max_body_bytes]}, headers=bearer(SCORER))
    assert huge.status_code == 413 and "max_body_bytes" in huge.text
    chunks = iter([b'{"customer_ids": ["', b"x" * settings.max_body_bytes, b'"]}'])  # no Content-Length
    chunked = client.post("/v1/score", content=chunks, headers={**bearer(SCORER), "Content-Type": "application/json"})
    assert chunked.status_code == 413
    small = iter([b'{"customer_ids": ', b'["c-nobody"]}'])
    assert (
        client.post("/v1/score", content=small, headers={**bearer(SCORER), "Content-Type": "application/json"}).json()[
            "customers"
        ][0]["status"]
        == "excluded"
    )
    bad_offer = client.post(
        "/v1/score",
        json={"customer_ids": ["c1"], "campaigns": [{"offer": "free_lunch", "method": "sms"}]},
        headers=bearer(SCORER),
    )
    assert bad_offer.status_code == 422 and bad_offer.json()["detail"][0]["loc"] == ["body", "campaigns", 0, "offer"]
    bad_slot = client.post("/v1/score", json={"customer_ids": ["c1"], "time_slots": [25]}, headers=bearer(SCORER))
    assert bad_slot.status_code == 422 and bad_slot.json()["detail"][0]["loc"] == ["body", "time_slots", 0]
    empty = client.post("/v1/score", json={"customer_ids": []}, headers=bearer(SCORER))
    assert empty.status_code == 422 and "customer_ids" in empty.text


def test_call_list_ranks_one_campaign_per_eligible_customer_with_reasons(service, trained_world):
    client, world, settings = service
    response = client.post("/v1/call-list", json={"capacity": 10}, headers=bearer(CALLER))
    assert response.status_code == 200, response.text
    body = response.json()
    entries = body["call_list"]
    assert len(entries) == 10 and [e["rank"] for e in entries] == list(range(1, 11))
    uplifts = [e["uplift"] for e in entries]
    assert uplifts == sorted(uplifts, reverse=True) and len({e["customer_id"] for e in entries}) == 10
    assert all(e["reason"] for e in entries) and all(e["driving_events"] is not None for e in entries)
    rows = online_features(open_store(world), [e["customer_id"] for e in entries])
    assert rows.consent_marketing.astype(bool).all()
    as_of = settings.clock
    for row in rows.itertuples():
        ts = pd.to_datetime(pd.Series(list(row.event_timestamps)), utc=True)
        recent_contact = (np.asarray(row.channels) == "telemarketing") & (ts > as_of - pd.Timedelta(days=14)).to_numpy()
        recent_order = (np.asarray(row.actions) == "purchase") & (ts > as_of - pd.Timedelta(days=30)).to_numpy()
        assert not recent_contact.any() and not recent_order.any()
    assert body["excluded"]["no_consent"] > 0 and body["candidates"] == len(pd.read_parquet(world.profiles))
    relaxed = client.post(
        "/v1/call-list",
        json={"capacity": 10, "cooldown_days": 0, "converted_within_days": 0, "explain": False},
        headers=bearer(CALLER),
    ).json()
    assert set(relaxed["excluded"]) == {"no_consent"} and relaxed["call_list"][0]["reason"] is None


def test_a_call_list_without_an_eligible_candidate_is_empty_not_a_server_error(service, customers):
    client, _, _ = service
    response = client.post(
        "/v1/call-list", json={"capacity": 5, "customer_ids": [customers["refused"], ""]}, headers=bearer(CALLER)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["call_list"] == [] and body["explained"] == 0 and body["excluded"] == {"no_consent": 2}


def test_the_api_and_the_batch_call_list_apply_the_same_exclusions(service):
    """`lam score` (the list exported to the call centre) and /v1/call-list follow one rule set (lam.yaml)."""
    from lam_platform.campaigns.scoring import score

    client, world, settings = service
    api = client.post("/v1/call-list", json={"capacity": 10, "explain": False}, headers=bearer(CALLER)).json()
    batch = score(world, settings.clock, capacity=10)
    assert batch["excluded"] == api["excluded"] and set(api["excluded"]) >= {"no_consent", "already_converted"}
    scored = set(pd.read_parquet(world.outputs / "scores.parquet").customer_id)
    assert len(scored) == api["candidates"] - sum(api["excluded"].values())
    assert {e["customer_id"] for e in api["call_list"]} <= scored  # the API only lists customers the batch scored


def test_health_readiness_metrics_and_openapi(service, customers):
    client, _, _ = service
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"]
    client.post("/v1/score", json={"customer_ids": customers["consenting"][:1]}, headers=bearer(SCORER))
    client.post("/v1/score", json={"customer_ids": customers["consenting"][:1]})
    metrics = client.get("/metrics").text
    assert 'lam_requests_total{endpoint="/v1/score",status="200"}' in metrics
    assert 'lam_errors_total{endpoint="/v1/score",kind="unauthenticated"}' in metrics
    assert f'lam_model_info{{version="{ready.json()["model_version"]}"}} 1.0' in metrics
    assert "lam_request_duration_seconds_bucket" in metrics
    assert SCORER not in metrics
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/call-list", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


def test_token_configuration_errors_name_the_entry_and_never_the_token(tmp_path):
    with pytest.raises(TokenConfigError, match="exactly one"):
        load_tokens({})
    with pytest.raises(TokenConfigError, match="entry 1 .*scopes"):
        parse_tokens([TOKENS[0], {"name": "x", "token": "y" * 20, "scopes": ["admin"]}], "t")
    with pytest.raises(TokenConfigError, match="at least 16") as error:
        load_tokens({"LAM_API_TOKENS": '[{"name": "a", "token": "short", "scopes": ["score"]}]'})
    assert "short" not in str(error.value)
    file = tmp_path / "tokens.yaml"
    file.write_text(f"- name: crm\n  token: {SCORER}\n  scopes: [score]\n")
    [token] = load_tokens({"LAM_API_TOKENS_FILE": str(file)})
    assert token.name == "crm" and token.scopes == {"score"} and SCORER not in repr(token)


def test_every_scoring_request_is_audited_without_ids_or_tokens(service, customers):
    client, world, _ = service
    ids = customers["consenting"][:2] + [customers["unknown"]]
    start = pd.Timestamp.now(tz="UTC")
    client.post("/v1/score", json={"customer_ids": ids}, headers=bearer(SCORER))
    client.post("/v1/score", json={"customer_ids": ids})
    client.post("/v1/score", json={"customer_ids": ids}, headers=bearer(CALLER))
    client.post("/v1/call-list", json={"capacity": 2, "customer_ids": ids, "explain": False}, headers=bearer(CALLER))
    client.get("/healthz")
    from lam_platform.governance.audit import read_audit

    entries = list(read_audit(world.audit_log, start))
    assert [(e["token"], e["endpoint"], e["customers"], e["status"], e["outcome"]) for e in entries] == [
        ("crm", "/v1/score", 3, 200, "ok"),
        ("(none)", "/v1/score", None, 401, "unauthenticated"),
        ("ops", "/v1/score", None, 403, "forbidden"),
        ("ops", "/v1/call-list", 3, 200, "ok"),
    ]
    text = world.audit_log.read_text()
    assert not any(i in text for i in ids) and SCORER not in text and CALLER not in text
    result = CliRunner().invoke(cli_main, ["audit", "--workdir", str(world.root), "--json"])
    assert result.exit_code == 0 and len(json.loads(result.output)["entries"]) >= 4


def test_call_list_capacity_and_explanations_are_bounded_per_request_and_readyz_names_no_internals(trained_world):
    settings = ServiceSettings.from_workdir(
        trained_world, clock=load_world_config(trained_world).scoring_time, max_call_list=20, max_explained=2
    )
    with TestClient(create_app(settings, parse_tokens(TOKENS, "test"))) as client:
        too_many = client.post("/v1/call-list", json={"capacity": 21}, headers=bearer(CALLER))
        assert too_many.status_code == 422 and "capacity" in too_many.text
        body = client.post("/v1/call-list", json={"capacity": 5}, headers=bearer(CALLER)).json()
        assert body["explained"] == 2 and len(body["call_list"]) == 5
        assert [e["reason"] is not None for e in body["call_list"]] == [True, True, False, False, False]
        assert set(client.get("/readyz").json()) == {"ready", "model_version"}


SCOPE_TOKENS = {"score": SCORER, "call-list": CALLER}  # each token has exactly one of the two scopes
PROTECTED = {
    ("/v1/score", "post"): "score",
    ("/v1/call-list", "post"): "call-list",
    ("/v1/fairness", "get"): "call-list",
}
OPEN = {("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get")}


def _operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}


def _conforms(spec: dict, path: str, method: str, status: int, body: object) -> None:
    """Validate `body` against the schema the spec documents for this status (its $refs resolved in the spec)."""
    schema = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": spec["components"]})


def test_openapi_has_a_bearer_scheme_that_the_protected_routes_name_with_the_scope_they_enforce(service):
    client, _, _ = service
    spec = client.get("/openapi.json").json()
    [(name, scheme)] = spec["components"]["securitySchemes"].items()
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    assert "security" not in spec  # no global requirement: the probes stay open
    operations = _operations(spec)
    assert set(operations) == set(PROTECTED) | OPEN
    assert {key: op.get("security") for key, op in operations.items()} == {
        **{key: [{name: [scope]}] for key, scope in PROTECTED.items()},
        **{key: None for key in OPEN},
    }
    for (path, method), scope in PROTECTED.items():  # what the spec says is what the service does
        send = getattr(client, method)
        body = {"json": {}} if method == "post" else {}
        assert send(path, **body).status_code == 401
        other = next(token for s, token in SCOPE_TOKENS.items() if s != scope)
        assert send(path, **body, headers=bearer(other)).status_code == 403
        assert send(path, **body, headers=bearer(SCOPE_TOKENS[scope])).status_code not in (401, 403)
    for path, method in OPEN:
        assert getattr(client, method)(path).status_code not in (401, 403)


def test_error_responses_are_documented_with_the_bodies_the_service_sends(service, customers):
    client, _, settings = service
    spec = client.get("/openapi.json").json()
    documented = {key: {int(code) for code in op["responses"]} for key, op in _operations(spec).items()}
    assert documented[("/v1/score", "post")] == {200, 400, 401, 403, 413, 422, 503}
    assert documented[("/v1/call-list", "post")] == {200, 400, 401, 403, 409, 413, 422, 503}
    assert documented[("/v1/fairness", "get")] == {200, 401, 403, 404, 422}
    assert documented[("/readyz", "get")] == {200, 503}
    assert "WWW-Authenticate" in spec["paths"]["/v1/score"]["post"]["responses"]["401"]["headers"]
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    ok = {"customer_ids": customers["consenting"][:1]}
    refusals = {
        401: client.post("/v1/score", json=ok),
        403: client.post("/v1/score", json=ok, headers=bearer(CALLER)),
        413: client.post("/v1/score", json={"customer_ids": ["x" * settings.max_body_bytes]}, headers=bearer(SCORER)),
        400: client.post(
            "/v1/score",
            content=b'{"customer_ids": ["\xff"]}',
            headers={**bearer(SCORER), "Content-Type": "application/json"},
        ),
    }
    for status, response in refusals.items():
        assert response.status_code == status
        _conforms(spec, "/v1/score", "post", status, response.json())
    assert refusals[401].headers["WWW-Authenticate"] == "Bearer"
    invalid = [  # pydantic's own errors, and the service's limit and vocabulary checks
        client.post("/v1/score", json={"customer_ids": "c1"}, headers=bearer(SCORER)),
        client.post(
            "/v1/score",
            json={"customer_ids": [f"c{i}" for i in range(settings.max_customers + 1)]},
            headers=bearer(SCORER),
        ),
        client.post("/v1/score", json={"customer_ids": ["c1"], "targets": ["nothing_like_it"]}, headers=bearer(SCORER)),
    ]
    for response in invalid:
        assert response.status_code == 422, response.text
        _conforms(spec, "/v1/score", "post", 422, response.json())
    with pytest.raises(jsonschema.ValidationError):  # the documented bodies are not "anything goes"
        _conforms(spec, "/v1/score", "post", 422, {"detail": "a plain string"})


def test_fairness_serves_the_lam_fairness_report_and_it_validates_against_its_model(service):
    from lam_platform.campaigns.scoring import score

    client, world, settings = service
    score(world, settings.clock, capacity=10)  # the stored call list the report is about
    response = client.get("/v1/fairness", headers=bearer(CALLER))
    assert response.status_code == 200, response.text
    report = call_list_fairness(world)
    report.pop("call_list")
    assert response.json() == json.loads(json.dumps(report))  # typed, yet nothing added, dropped or renamed
    spec = client.get("/openapi.json").json()
    _conforms(spec, "/v1/fairness", "get", 200, response.json())
    # Where outcomes are known (the CLI on a simulated world), groups carry calibration_gap: the model keeps it.
    observed = call_list_fairness(world, observed=lambda calls: np.linspace(0, 0.2, len(calls)))
    observed.pop("call_list")
    assert all("calibration_gap" in g for groups in observed["attributes"].values() for g in groups if g["selected"])
    assert FairnessReport.model_validate(observed).model_dump(exclude_unset=True) == observed


@pytest.fixture
def torch_threads():
    """The app factory sets torch's process-wide thread count for serving; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_app_factory_builds_the_service_from_environment_variables(
    trained_world, customers, monkeypatch, torch_threads
):
    clock = load_world_config(trained_world).scoring_time
    environ = {
        "LAM_WORKDIR": str(trained_world.root),
        "LAM_API_TOKENS": json.dumps(TOKENS),
        "LAM_AS_OF": clock.isoformat(),
        "LAM_MAX_CUSTOMERS": "2",
        "LAM_MAX_BODY_BYTES": "5000",
    }
    monkeypatch.delenv("LAM_API_TOKENS_FILE", raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    config = uvicorn.Config("lam_platform.service.app:app_from_env", factory=True, log_config=None)
    config.load()  # what `uvicorn --factory lam_platform.service.app:app_from_env` does before serving
    with TestClient(config.loaded_app) as client:
        ids = customers["consenting"][:3]
        answer = client.post("/v1/score", json={"customer_ids": ids[:2]}, headers=bearer(SCORER))
        assert answer.status_code == 200 and pd.Timestamp(answer.json()["as_of"]) == clock  # LAM_AS_OF
        too_many = client.post("/v1/score", json={"customer_ids": ids}, headers=bearer(SCORER))  # LAM_MAX_CUSTOMERS
        assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "customer_ids"]
        huge = client.post("/v1/score", json={"customer_ids": ["x" * 5000]}, headers=bearer(SCORER))
        assert huge.status_code == 413 and "max_body_bytes=5000" in huge.text  # LAM_MAX_BODY_BYTES
        assert client.post("/v1/score", json={"customer_ids": ids[:1]}, headers=bearer(SCORER[::-1])).status_code == 401
        assert torch.get_num_threads() == 1  # the serving default: one torch thread per request
    # The same settings as `lam serve --workdir W` where nothing else is set: lam.yaml through from_workdir.
    base = {"LAM_WORKDIR": str(trained_world.root)}
    assert settings_from_env(base) == ServiceSettings.from_workdir(trained_world, torch_threads=1, warm_states=True)
    version = next(p for p in trained_world.artifacts.iterdir() if p.is_dir())
    assert settings_from_env(
        {
            **base,
            "LAM_ARTIFACT": str(version),
            "LAM_POLL_SECONDS": "0.5",
            "LAM_STATE_CACHE": "0",
            "LAM_WARM_STATES": "0",
        }
    ) == ServiceSettings.from_workdir(
        trained_world, model_path=version, poll_seconds=0.5, state_cache=0, torch_threads=1, warm_states=False
    )


@pytest.mark.parametrize(
    ("environ", "error", "match"),
    [
        ({}, ServiceConfigError, "LAM_WORKDIR is not set"),
        ({"LAM_WORKDIR": "/nowhere/at/all"}, ServiceConfigError, "LAM_WORKDIR=/nowhere/at/all"),
        ({"LAM_MAX_CUSTOMERS": "many"}, ServiceConfigError, "LAM_MAX_CUSTOMERS='many' is not an integer"),
        ({"LAM_MAX_BODY_BYTES": "-1"}, ServiceConfigError, "LAM_MAX_BODY_BYTES='-1' must be positive"),
        ({"LAM_POLL_SECONDS": "0"}, ServiceConfigError, "LAM_POLL_SECONDS='0' must be positive"),
        ({"LAM_AS_OF": "2026-06-04T10:00:00"}, ClockError, "LAM_AS_OF .* has no time zone"),
        ({"LAM_ARTIFACT": "/no/such/version"}, ServiceConfigError, "LAM_ARTIFACT=/no/such/version"),
        ({"LAM_STATE_CACHE": "-5"}, ServiceConfigError, "LAM_STATE_CACHE='-5' must be a whole number"),
        ({"LAM_TORCH_THREADS": "0"}, ServiceConfigError, "LAM_TORCH_THREADS='0' must be positive"),
        ({"LAM_WARM_STATES": "yes"}, ServiceConfigError, "LAM_WARM_STATES='yes' must be 1 \\(on\\) or 0"),
    ],
)
def test_the_app_factory_refuses_a_bad_environment_naming_the_variable(tiny_world, environ, error, match):
    environ = {"LAM_WORKDIR": str(tiny_world.root), **environ} if environ else environ
    with pytest.raises(error, match=match):
        settings_from_env(environ)


def test_the_app_factory_needs_tokens_before_anything_else(tiny_world):
    with pytest.raises(TokenConfigError, match="exactly one"):
        app_from_env({"LAM_WORKDIR": str(tiny_world.root)})
