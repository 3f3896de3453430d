"""What the simulated operator sells, and at what price: devices, plans and smart-life services."""

from __future__ import annotations

import numpy as np

DEVICES = tuple(f"device:phone_{k:02d}" for k in range(24))
PLAN_PAGES = ("plan:basic", "plan:standard", "plan:premium", "plan:family")
SERVICES = ("service:home_security", "service:energy", "service:video", "service:music", "service:health")
PLAN_FEE = {"basic": 30.0, "standard": 50.0, "premium": 80.0}
CATEGORY_OBJECTS = {"device": DEVICES, "plan": PLAN_PAGES, "service": SERVICES}


def price(objects: np.ndarray) -> np.ndarray:
    prices = {d: 300.0 + 40 * k for k, d in enumerate(DEVICES)}
    prices.update({"plan:basic": 30.0, "plan:standard": 50.0, "plan:premium": 80.0, "plan:family": 100.0})
    prices.update({s: 15.0 + 5 * k for k, s in enumerate(SERVICES)})
    return np.array([prices.get(o, 0.0) for o in objects])


def price_of_offer(offers: np.ndarray) -> np.ndarray:
    return np.select([offers == "device_upgrade", offers == "plan_change"], [700.0, 60.0], default=30.0)
