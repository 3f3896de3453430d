"""What the scoring service's handlers share: settings, the model watcher, the online store, tokens, metrics, audit.

`create_app` builds one ServiceState and keeps it on `app.state.service`; handlers reach it through the
`get_state` dependency (`state: ServiceState = Depends(get_state)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from lam_platform.core.workdir import Workdir
from lam_platform.governance.audit import AuditLog
from lam_platform.service.auth import ApiToken, Authenticator
from lam_platform.service.metrics import Metrics
from lam_platform.service.model import ModelWatcher, PopulationPrior, ServingModel
from lam_platform.service.online_reader import OnlineReader
from lam_platform.service.settings import ServiceSettings
from lam_platform.service.warm_states import StateWarmer


@dataclass
class ServiceState:
    settings: ServiceSettings
    workdir: Workdir
    watcher: ModelWatcher  # the model version being served, swapped as new ones appear
    reader: OnlineReader
    prior: PopulationPrior | None  # answers consenting customers without history; None without a campaign log
    auth: Authenticator
    metrics: Metrics
    audit: AuditLog

    @classmethod
    def build(cls, settings: ServiceSettings, tokens: list[ApiToken]) -> ServiceState:
        """Load the model, open the online store and the audit log of `settings.workdir`."""
        workdir = Workdir.at(settings.workdir)
        reader = OnlineReader(workdir)
        warm = StateWarmer(workdir, reader, settings.analysis_only) if settings.warm_states else None
        watcher = ModelWatcher(
            workdir.artifacts, settings.poll_seconds, settings.model_path, settings.state_cache, warm
        )
        prior = PopulationPrior.from_campaign_log(workdir.campaign_log) if workdir.campaign_log.exists() else None
        auth = Authenticator(tokens)
        metrics = Metrics()
        metrics.show_model(watcher.current.version if watcher.current else None)
        metrics.watch_state_cache(lambda: watcher.current.state_cache if watcher.current else None)
        return cls(settings, workdir, watcher, reader, prior, auth, metrics, AuditLog(workdir.audit_log))

    def current_model(self) -> ServingModel:
        """The model version to answer with; 503 while none is loaded."""
        model = self.watcher.current
        if model is None:
            raise HTTPException(503, f"no model loaded: {self.watcher.last_error}")
        self.metrics.show_model(model.version)
        return model


async def get_state(request: Request) -> ServiceState:
    """The app's ServiceState, as a FastAPI dependency. Async: a plain attribute read needs no worker thread."""
    return request.app.state.service
