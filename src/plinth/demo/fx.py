"""A stand-in of the FX reference-rates service the claims demo's `fx_rates` connector calls,
mounted at /demo/fx only by `plinth demo` (`Settings.demo`).

Why a stand-in: the demo must run on a machine with no internet, and a connector to a real
service would fail on it (its error path is shown by the garage_estimate workflow all the same
when this route is absent, e.g. under `plinth serve`). The rates are fixed and say so in every
answer (`source`): it is not market data. An operator points the connector's `base_url` at a
real service that speaks fx_rates.openapi.yaml.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Query

from plinth.errors import BadRequest

# Units of each currency per euro (fixed, illustrative).
PER_EUR = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "BRL": Decimal("5.80")}
SOURCE = "plinth demo stand-in: fixed illustrative rates, not market data"
DOCUMENT = Path(__file__).with_name("fx_rates.openapi.yaml")

router = APIRouter(prefix="/demo/fx", tags=["demo"])


@router.get("/convert")
async def convert(
    from_: str = Query(alias="from"), to: str = Query(), amount: str = Query()
) -> dict[str, Any]:
    """Convert `amount` from one currency to another at the fixed demo rate."""
    for name, code in (("from", from_), ("to", to)):
        if code not in PER_EUR:
            raise BadRequest(
                f"Unknown currency {code!r}; the demo knows {', '.join(PER_EUR)}", path=name
            )
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise BadRequest(f"{amount!r} is not an amount", path="amount") from None
    if not value.is_finite() or value < 0:
        raise BadRequest(f"{amount!r} is not an amount", path="amount")
    rate = PER_EUR[to] / PER_EUR[from_]
    result = (value * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return {
        "from": from_,
        "to": to,
        "amount": amount,
        "rate": float(round(rate, 6)),
        "result": str(result),
        "source": SOURCE,
    }


@router.get("/openapi.json")
async def document() -> dict[str, Any]:
    """The OpenAPI document this stand-in implements (importable as a connector)."""
    return dict(yaml.safe_load(DOCUMENT.read_text()))
