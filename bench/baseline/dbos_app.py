"""The bench's 5-step claim workflow written for DBOS, as its documentation suggests: steps are
decorated functions, the workflow calls them in order, a queue spreads instances over worker
processes. Nothing here imports Plinth. One process is one worker:

    python bench/baseline/dbos_app.py --db postgresql://…/sysdb --concurrency 10 --poll 0.05 \
        [--plugin WASM --cache DIR]

With `--plugin`, the first step scores the claim by calling the same WebAssembly component
Plinth's plugin step runs, on bare wasmtime (a new instance per call), instead of in Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

QUEUE = "claims"
sys.path.insert(0, str(Path(__file__).resolve().parent))
scorer: Any = None  # RawWasm when --plugin


@DBOS.step()
def facts(claim: dict[str, Any]) -> dict[str, Any]:
    """Step 1 (plain): the figures the decision needs."""
    amount = float(claim["amount"])
    return {"amount": amount, "score": 10 if amount > 500 else 0}


@DBOS.step()
def score(claim: dict[str, Any]) -> dict[str, Any]:
    """Step 1 (plugin): the fraud scorer's `score` action on the WebAssembly component."""
    out = json.loads(scorer.call_fresh("score", json.dumps(claim)))
    return {"amount": float(claim["amount"]), "score": int(out["score"])}


@DBOS.step()
def route(figures: dict[str, Any]) -> str:
    """Step 2: low value and clean claims are approved, the rest reviewed."""
    return "approve" if figures["amount"] <= 1000.0 and figures["score"] < 30 else "review"


@DBOS.step()
def approve(lane: str) -> str:
    """Step 3."""
    return "approved" if lane == "approve" else "to review"


@DBOS.step()
def note(decision: str, figures: dict[str, Any]) -> str:
    """Step 4."""
    return f"{decision}: {figures['amount']:.2f}"


@DBOS.step()
def done(summary: str) -> dict[str, Any]:
    """Step 5: the instance's result."""
    return {"status": "closed", "summary": summary}


@DBOS.workflow()
def claim_flow(claim: dict[str, Any]) -> dict[str, Any]:
    figures = score(claim) if scorer is not None else facts(claim)
    decision = approve(route(figures))
    return done(note(decision, figures))


def main() -> None:
    global scorer
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True, help="the system database (PostgreSQL URL)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--plugin", type=Path)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    if args.plugin:
        from rawwasm import RawWasm

        scorer = RawWasm(args.plugin, args.cache)
    config: DBOSConfig = {
        "name": "bench-claims",
        "system_database_url": args.db,
        "application_version": "bench",
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=args.concurrency, polling_interval_sec=args.poll)
    print("dbos worker ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
