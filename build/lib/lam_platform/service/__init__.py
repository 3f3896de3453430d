"""The online scoring service (`lam serve`): FastAPI app, bearer-token auth, the served model."""
