"""The fuel budget: how much fuel a tenant's plugin calls may burn per minute."""

from __future__ import annotations

import math
import time
from typing import Any

from plinth.errors import (
    RateLimited,
)
from plinth.extensions.ports import Services


class FuelBudget:
    """Fuel a tenant may burn per minute, on the platform's rate limiter (`platform.quotas`).

    A call is allowed while the tenant's window has fuel left; afterwards it is charged what
    it really burnt (capped at what is left, so the window saturates and the next call is
    refused with 429 until the sliding window frees fuel).
    """

    NAMESPACE = "plugin-fuel"

    def __init__(self, platform: Services) -> None:
        self.platform = platform  # `platform.quotas` is looked up per call (built after us)

    @property
    def limiter(self) -> Any:
        return self.platform.quotas.limiter

    def _item(self, budget: int) -> Any:
        from limits import RateLimitItemPerMinute

        return RateLimitItemPerMinute(max(1, budget), namespace=self.NAMESPACE)

    async def check(self, tenant_id: str, budget: int) -> None:
        item = self._item(budget)
        limiter = self.limiter
        if await limiter.test(item, tenant_id):
            return
        stats = await limiter.get_window_stats(item, tenant_id)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"This tenant used its plugin fuel budget ({budget} per minute)",
            headers={"Retry-After": str(retry)},
            extra={"budget": budget, "remaining": stats.remaining},
        )

    async def spend(self, tenant_id: str, budget: int, fuel: int) -> None:
        item = self._item(budget)
        limiter = self.limiter
        if fuel <= 0 or await limiter.hit(item, tenant_id, cost=fuel):
            return  # the window had room for all of it: one storage call (Redis round trip)
        for _ in range(3):  # another node may have spent meanwhile: re-read what is left
            remaining = (await limiter.get_window_stats(item, tenant_id)).remaining
            charge = min(fuel, remaining)
            if charge <= 0 or await limiter.hit(item, tenant_id, cost=charge):
                return
