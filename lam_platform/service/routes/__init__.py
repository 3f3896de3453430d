"""The scoring service's endpoints as FastAPI routers, one module per concern; `create_app` includes them."""
