"""Every node type, approval rule, retries and the error path, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from plinth.errors import Conflict, Forbidden, ValidationFailed
from plinth.events import Event
from plinth.extensions.models import PluginTenantBusy
from plinth.workflows.steps.approval import decide
from tests.workflows.conftest import ADMIN, Harness, InstalledPlugins, stand_in, user


def flow(nodes: dict[str, Any], first: str, **extra: Any) -> dict[str, Any]:
    return {"first": first, "start": [{"type": "manual"}], "nodes": nodes, **extra}


async def test_assign_gateway_parallel_join_end(wf: Harness) -> None:
    await wf.publish(
        {
            "route": flow(
                {
                    "calc": {
                        "type": "assign",
                        "set": {"double": "vars.amount * 2"},
                        "next": "gate",
                    },
                    "gate": {
                        "type": "gateway",
                        "branches": [{"when": "vars.double > 100", "next": "split"}],
                        "default": "small",
                    },
                    "split": {"type": "parallel", "branches": ["a", "b"]},
                    "a": {"type": "assign", "set": {"a": "true"}, "next": "j"},
                    "b": {"type": "assign", "set": {"b": "true"}, "next": "j"},
                    "j": {"type": "join", "split": "split", "next": "done"},
                    "small": {"type": "end", "status": "failed"},
                    "done": {"type": "end"},
                },
                "calc",
            )
        }
    )
    big = await wf.get(await wf.start("route", {"amount": 60}))
    assert big["status"] == "completed"
    assert big["vars"] | {"a": True, "b": True, "double": 120} == big["vars"]
    nodes = [s["node"] for s in big["timeline"]]
    assert nodes.count("j") == 2 and nodes.count("done") == 1
    small = await wf.get(await wf.start("route", {"amount": 10}))
    assert small["status"] == "failed"


async def test_publish_refuses_bad_graph_with_paths(wf: Harness) -> None:
    with pytest.raises(ValidationFailed) as err:
        await wf.publish(
            {
                "bad": flow(
                    {
                        "a": {
                            "type": "gateway",
                            "branches": [{"when": "vars.x + 1", "next": "b"}],
                            "default": "b",
                        },
                        "b": {
                            "type": "service_task",
                            "action": "record.create",
                            "entity": "nope",
                            "next": "e",
                        },
                        "orphan": {"type": "end"},
                        "split": {"type": "parallel", "branches": ["e", "e"]},
                        "j": {"type": "join", "split": "a", "next": "e"},
                        "t": {"type": "user_task", "assignee": {"role": "ghost"}, "next": "e"},
                        "e": {"type": "end"},
                    },
                    "a",
                )
            }
        )
    paths = {f.path: f.code for f in err.value.faults}
    assert paths["workflows.bad.nodes.a.branches[0].when"] == "cel_type"
    assert paths["workflows.bad.nodes.b.entity"] == "unknown_reference"
    assert paths["workflows.bad.nodes.orphan"] == "unreachable"
    assert paths["workflows.bad.nodes.j.split"] == "join_mismatch"
    assert paths["workflows.bad.nodes.split"] == "join_mismatch"
    assert paths["workflows.bad.nodes.t.assignee.role"] == "unknown_reference"


async def test_user_task_form_validated_and_inbox(wf: Harness) -> None:
    await wf.publish(
        {
            "review": flow(
                {
                    "review": {
                        "type": "user_task",
                        "assignee": {"role": "analyst", "attrs": {"country": "vars.country"}},
                        "form": {"entity": "claim", "fields": ["amount", "status"]},
                        "output": "review",
                        "next": "done",
                    },
                    "done": {"type": "end"},
                },
                "review",
            )
        }
    )
    iid = await wf.start("review", {"country": "FR"})
    fr, de = user(wf, "ana", "analyst", country="FR"), user(wf, "dirk", "analyst", country="DE")
    assert await wf.tasks(de) == []
    [task] = await wf.tasks(fr)
    with pytest.raises(Forbidden):
        await wf.platform.workflows.complete(wf.tenant, task["id"], de, {"status": "approved"})
    with pytest.raises(ValidationFailed) as err:
        await wf.platform.workflows.complete(wf.tenant, task["id"], fr, {"status": "maybe"})
    assert err.value.faults[0].path.startswith("data.status")
    await wf.platform.workflows.complete(wf.tenant, task["id"], fr, {"status": "approved"})
    await wf.drain()
    inst = await wf.get(iid)
    assert inst["status"] == "completed" and inst["vars"]["review"] == {"status": "approved"}
    assert inst["timeline"][0]["tasks"][0]["decided_by"] == "ana"


@pytest.mark.parametrize(
    ("rule", "veto", "votes", "want"),
    [
        ("any", False, ["approved", None, None], "approved"),
        ("any", False, ["rejected", "rejected", None], None),
        ("all", False, ["approved", "approved", None], None),
        ("all", False, ["approved", "rejected", None], "rejected"),
        ("majority", False, ["approved", "approved", None], "approved"),
        ("majority", False, ["rejected", "rejected", None], "rejected"),
        ({"quorum": 2}, False, ["approved", None, None], None),
        ({"quorum": 2}, False, ["approved", "approved", None], "approved"),
        ({"quorum": 2}, False, ["rejected", "rejected", None], "rejected"),
        ("any", True, ["approved", "rejected", None], "rejected"),
    ],
)
def test_approval_rules(rule: Any, veto: bool, votes: list[str | None], want: Any) -> None:
    assert decide(rule, veto, votes) == want


def _vote(rule: Any, veto: bool = False) -> dict[str, Any]:
    return flow(
        {
            "vote": {
                "type": "approval",
                "approvers": [{"role": "manager"}] * 3,
                "rule": rule,
                "veto": veto,
                "rejected": "no",
                "next": "yes",
            },
            "yes": {"type": "end"},
            "no": {"type": "end", "status": "failed"},
        },
        "vote",
    )


async def _approval(wf: Harness, rule: Any, veto: bool = False) -> str:
    await wf.publish({"ok": _vote(rule, veto)})
    return await wf.start("ok")


APPROVALS = [  # rule, veto, the managers' votes in turn, how the instance ends
    ("any", False, ["approved"], "completed"),
    ("all", False, ["approved", "approved", "approved"], "completed"),
    ("majority", False, ["rejected", "approved", "rejected"], "failed"),
    ({"quorum": 2}, False, ["approved", "approved"], "completed"),
    ("any", True, ["approved", "rejected"], "failed"),
]


async def test_approval_end_to_end(wf: Harness) -> None:
    # Each rule is a workflow of the same app: one platform and one publish for all of them.
    await wf.publish(
        {f"vote{i}": _vote(rule, veto) for i, (rule, veto, _, _) in enumerate(APPROVALS)}
    )
    managers = [user(wf, f"m{i}", "manager") for i in range(3)]
    for i, (rule, veto, votes, status) in enumerate(APPROVALS):
        iid = await wf.start(f"vote{i}")
        for who, vote in zip(managers, votes, strict=False):
            tasks = [t for t in await wf.tasks(who) if str(t["instance_id"]) == iid]
            await wf.platform.workflows.complete(
                wf.tenant, tasks[0]["id"], who, decision=vote, comment=f"{who.id} says {vote}"
            )
        await wf.drain()
        inst = await wf.get(iid)
        assert inst["status"] == status, (rule, veto, votes)
        tasks = inst["timeline"][0]["tasks"]
        assert [t["status"] for t in tasks].count("open") == 0, (rule, veto, votes)


async def test_delegation_and_one_vote_per_person(wf: Harness) -> None:
    iid = await _approval(wf, "all")
    m0, deputy = user(wf, "m0", "manager"), user(wf, "deputy")
    tasks = await wf.tasks(m0)
    await wf.platform.workflows.complete(wf.tenant, tasks[0]["id"], m0, decision="approved")
    with pytest.raises(Conflict):
        await wf.platform.workflows.complete(wf.tenant, tasks[1]["id"], m0, decision="approved")
    await wf.platform.workflows.delegate(wf.tenant, tasks[1]["id"], "deputy", m0)
    assert [t["id"] for t in await wf.tasks(deputy)] == [tasks[1]["id"]]
    await wf.platform.workflows.complete(wf.tenant, tasks[1]["id"], deputy, decision="approved")
    await wf.platform.workflows.complete(
        wf.tenant, tasks[2]["id"], user(wf, "m2", "manager"), decision="approved"
    )
    await wf.drain()
    assert (await wf.get(iid))["status"] == "completed"


class Flaky(InstalledPlugins):
    """A plugin service whose action fails `failures` times, then succeeds."""

    installed = {"fraud": {"score"}}

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []

    async def call_action(
        self, tenant: Any, plugin: str, action: str, input: dict[str, Any], principal: Any
    ) -> dict[str, Any]:
        self.calls.append(input)
        if len(self.calls) <= self.failures:
            raise RuntimeError("fraud service down")
        return {"score": 0.9}


def _scoring(on_error: bool) -> dict[str, Any]:
    node: dict[str, Any] = {
        "type": "service_task",
        "action": "plugin",
        "plugin": "fraud",
        "operation": "score",
        "input": {"amount": "vars.amount"},
        "output": "fraud",
        "next": "done",
        "retry": {"max_attempts": 3, "backoff": 0.01},
    }
    if on_error:
        node["on_error"] = "manual"
    nodes = {"score": node, "done": {"type": "end"}}
    if on_error:
        nodes["manual"] = {"type": "end", "status": "failed"}
    return flow(nodes, "score")


async def _settle(wf: Harness) -> None:
    """Run jobs, retries included (their backoff is milliseconds), until none is left."""
    import asyncio

    import sqlalchemy as sa

    from plinth.workflows import store

    for _ in range(500):
        await wf.drain()
        async with wf.platform.db.read() as conn:
            pending = (
                await conn.execute(sa.select(sa.func.count()).where(store.jobs.c.status != "done"))
            ).scalar()
        if not pending:
            return
        await asyncio.sleep(0.005)


async def test_retries_then_success(wf: Harness) -> None:
    stand_in(wf.platform, Flaky(2))
    await wf.publish({"s": _scoring(False)})
    iid = await wf.start("s", {"amount": 5})
    await _settle(wf)
    inst = await wf.get(iid)
    assert inst["status"] == "completed" and inst["vars"]["fraud"] == {"score": 0.9}
    assert inst["timeline"][0]["attempt"] == 3
    assert {c["idempotency_key"] for c in wf.platform.plugins.calls} == {  # type: ignore
        f"{iid}:{inst['timeline'][0]['id']}"
    }


class Busy(InstalledPlugins):
    """A plugin service that refuses the first `refusals` calls as the plugin layer does when
    the tenant already runs its share of workers (429 with Retry-After), then answers."""

    installed = {"fraud": {"score"}}

    def __init__(self, refusals: int, retry_after: str) -> None:
        self.refusals = refusals
        self.retry_after = retry_after
        self.calls: list[float] = []

    async def call_action(
        self, tenant: Any, plugin: str, action: str, input: dict[str, Any], principal: Any
    ) -> dict[str, Any]:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.refusals:
            raise PluginTenantBusy(
                "This tenant already runs 2 plugin call(s) at once; retry later",
                headers={"Retry-After": self.retry_after},
            )
        return {"score": 0.1}


async def test_a_busy_plugin_puts_the_step_off_until_retry_after(wf: Harness) -> None:
    # No `retry` on the step: a refusal before the call ran is not one of its attempts.
    busy = Busy(2, "0.3")
    stand_in(wf.platform, busy)
    scoring = _scoring(False)
    del scoring["nodes"]["score"]["retry"]
    await wf.publish({"s": scoring})
    iid = await wf.start("s", {"amount": 5})
    inst = await wf.get(iid)
    assert inst["status"] == "running"
    [step] = inst["timeline"]
    assert (step["status"], step["attempt"]) == ("queued", 1)
    assert "PluginTenantBusy" in step["error"]
    await _settle(wf)
    inst = await wf.get(iid)
    assert inst["status"] == "completed" and inst["vars"]["fraud"] == {"score": 0.1}
    assert (inst["timeline"][0]["status"], inst["timeline"][0]["attempt"]) == ("completed", 1)
    # Each try came once Retry-After had passed, the second one later (backing off).
    first, second, third = busy.calls
    assert second - first >= 0.3
    assert third - second >= 0.3


async def _always_busy(wf: Harness, retry_after: str) -> tuple[dict[str, Any], Busy]:
    """An instance whose plugin step (without a `retry` of its own) always meets a busy
    plugin asking to be called again in `retry_after` seconds, run until it settles."""
    busy = Busy(1000, retry_after)
    stand_in(wf.platform, busy)
    scoring = _scoring(False)
    del scoring["nodes"]["score"]["retry"]
    await wf.publish({"s": scoring})
    iid = await wf.start("s", {"amount": 5})
    await _settle(wf)
    return await wf.get(iid), busy


async def test_a_plugin_that_is_always_busy_fails_the_step_after_so_many_deferrals(
    wf: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plinth.workflows import advance

    monkeypatch.setattr(advance, "DEFERRALS", 3)
    inst, busy = await _always_busy(wf, "0.01")
    assert inst["status"] == "failed" and "PluginTenantBusy" in inst["timeline"][0]["error"]
    assert len(busy.calls) == 4  # the first call, then one per deferral


async def test_a_callee_out_for_long_fails_the_attempt_instead_of_putting_it_off(
    wf: Harness,
) -> None:
    # A refusal asking for more than a minute (an open circuit breaker's hour) is no
    # deferral: the step's own error handling runs now, not in an hour or thirty.
    inst, busy = await _always_busy(wf, "3600")
    assert inst["status"] == "failed" and "PluginTenantBusy" in inst["timeline"][0]["error"]
    assert len(busy.calls) == 1


async def test_a_side_effect_is_remembered_with_its_step_and_never_done_twice(
    wf: Harness,
) -> None:
    import sqlalchemy as sa

    from plinth.workflows import store

    scorer = Flaky(0)
    stand_in(wf.platform, scorer)
    await wf.publish({"s": _scoring(False)})
    # A run of the step before this one (its worker died after its call) remembered the
    # result: the step takes it, and the plugin is not called again.
    inst = await wf.platform.workflows.start(wf.tenant, "claims", "s", {"amount": 5}, ADMIN)
    async with wf.platform.db.read() as conn:
        step = (
            await conn.execute(
                sa.select(store.steps.c.id).where(store.steps.c.instance_id == inst["id"])
            )
        ).scalar_one()
    async with wf.platform.db.transaction() as conn:
        key = f"{inst['id']}:{step}"
        await conn.execute(store.effects.insert().values(key=key, result={"score": 0.5}, at=0))
    await _settle(wf)
    assert (await wf.get(inst["id"]))["vars"]["fraud"] == {"score": 0.5}
    assert scorer.calls == []
    # A first run calls once and remembers the result in the step's own transaction.
    iid = await wf.start("s", {"amount": 7})
    await _settle(wf)
    done = await wf.get(iid)
    assert done["status"] == "completed" and len(scorer.calls) == 1
    async with wf.platform.db.read() as conn:
        kept = (
            await conn.execute(
                sa.select(store.effects.c.result).where(
                    store.effects.c.key == f"{iid}:{done['timeline'][0]['id']}"
                )
            )
        ).scalar_one()
    assert kept == {"score": 0.9}


async def test_the_events_of_committed_steps_reach_the_audit_ledger_in_order(
    wf: Harness,
) -> None:
    # A worker loop goes on to its next job while the ledger appends a step's events; `drain`
    # (and a worker that stops) waits for them.
    stand_in(wf.platform, Flaky(0))
    await wf.publish({"s": _scoring(False)})
    ids = [await wf.start("s", {"amount": n}) for n in range(3)]
    await wf.drain()
    audit = wf.platform.governance.audit
    entries = await audit.list(wf.tenant.id, limit=1000)
    for iid in ids:
        mine = [e["action"] for e in entries if (e.get("data") or {}).get("instance") == iid]
        assert mine == ["workflow.started", "workflow.completed"], mine
    assert (await audit.verify(wf.tenant.id)).ok


async def test_cancelling_a_linear_workflow_closes_its_queued_job(wf: Harness) -> None:
    import sqlalchemy as sa

    from plinth.workflows import store

    stand_in(wf.platform, Busy(100, "60"))  # the step waits a minute for its plugin
    await wf.publish({"s": _scoring(False)})
    iid = await wf.start("s", {"amount": 5})
    await wf.platform.workflows.control(wf.tenant, iid, "cancel", ADMIN)
    async with wf.platform.db.read() as conn:
        left = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    store.jobs.c.instance_id == iid, store.jobs.c.status != "done"
                )
            )
        ).scalar()
    assert (await wf.get(iid))["status"] == "cancelled" and left == 0


async def test_the_events_of_steps_committed_one_after_another_are_published_in_that_order(
    wf: Harness,
) -> None:
    # A subscriber that takes its time over one event (the ledger waiting for its group
    # commit) must not let the event of a step committed later be published before it.
    engine = wf.platform.workflows.engine
    seen: list[str] = []

    async def slow_first(event: Event) -> None:
        if event.data.get("n") == 0:
            await asyncio.sleep(0.05)
        seen.append(event.data["n"])

    wf.platform.events.subscribe("review.order", slow_first)
    for n in range(3):
        engine._announce([Event("review.order", None, {"n": n})])
    await engine.announced()
    assert seen == [0, 1, 2]


class Suspending(InstalledPlugins):
    """A plugin whose first call sees its instance suspended while it runs (an operator's
    suspend, a lease taken over): the call has happened all the same."""

    installed = {"fraud": {"score"}}

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.instance: tuple[str, str] | None = None
        self.calls: list[str] = []

    async def call_action(
        self, tenant: Any, plugin: str, action: str, input: dict[str, Any], principal: Any
    ) -> dict[str, Any]:
        self.calls.append(input.get("idempotency_key", action))
        if len(self.calls) == 1 and self.instance is not None:
            await self.engine.set_status(*self.instance, "suspend")
        return {"score": 0.9}


async def test_a_side_effect_done_while_its_instance_was_suspended_is_not_done_again(
    wf: Harness,
) -> None:
    plugin = Suspending(wf.platform.workflows.engine)
    stand_in(wf.platform, plugin)
    await wf.publish({"s": _scoring(False)})
    inst = await wf.platform.workflows.start(wf.tenant, "claims", "s", {"amount": 5}, ADMIN)
    plugin.instance = (wf.tenant.id, inst["id"])
    await _settle(wf)
    assert len(plugin.calls) == 1
    await wf.platform.workflows.engine.set_status(wf.tenant.id, inst["id"], "resume")
    await _settle(wf)
    done = await wf.get(inst["id"])
    assert done["status"] == "completed" and done["vars"]["fraud"] == {"score": 0.9}
    assert len(plugin.calls) == 1, plugin.calls


async def test_error_path_and_retry_from_failed_step(wf: Harness) -> None:
    stand_in(wf.platform, Flaky(10))
    await wf.publish({"s": _scoring(True), "t": _scoring(False)})
    inst = await wf.get(await wf.start("s", {"amount": 5}))
    await _settle(wf)
    inst = await wf.get(inst["id"])
    assert [s["node"] for s in inst["timeline"]] == ["score", "manual"]
    assert "fraud service down" in inst["vars"]["error"]["message"]
    iid = await wf.start("t", {"amount": 5})
    await _settle(wf)
    assert (await wf.get(iid))["status"] == "failed"
    wf.platform.plugins.failures = 0  # type: ignore[attr-defined]
    await wf.platform.workflows.control(wf.tenant, iid, "retry", ADMIN)
    await _settle(wf)
    assert (await wf.get(iid))["status"] == "completed"


async def test_subworkflow_and_suspend_cancel(wf: Harness) -> None:
    await wf.publish(
        {
            "parent": flow(
                {
                    "child": {
                        "type": "subworkflow",
                        "workflow": "kid",
                        "input": {"n": "vars.n + 1"},
                        "output": "kid",
                        "next": "t",
                    },
                    "t": {"type": "timer", "seconds": 3600, "next": "e"},
                    "e": {"type": "end"},
                },
                "child",
            ),
            "kid": flow(
                {
                    "a": {"type": "assign", "set": {"m": "vars.n * 10"}, "next": "e"},
                    "e": {"type": "end"},
                },
                "a",
            ),
        }
    )
    iid = await wf.start("parent", {"n": 1})
    inst = await wf.get(iid)
    assert inst["vars"]["kid"]["m"] == 20 and inst["status"] == "running"
    # The child's start and end are in the ledger, as a started instance's are.
    await wf.drain()
    audit = wf.platform.governance.audit
    entries = [
        (e["action"], e["data"])
        for e in await audit.list(wf.tenant.id, limit=1000)
        if (e.get("data") or {}).get("workflow") == "kid"
    ]
    assert sorted(a for a, _ in entries) == ["workflow.completed", "workflow.started"], entries
    kid = dict(entries)
    assert kid["workflow.started"]["by"] == f"workflow:{iid}"
    assert kid["workflow.started"]["instance"] == kid["workflow.completed"]["instance"]
    await wf.platform.workflows.control(wf.tenant, iid, "suspend", ADMIN)
    await wf.platform.workflows.control(wf.tenant, iid, "resume", ADMIN)
    await wf.platform.workflows.control(wf.tenant, iid, "cancel", ADMIN)
    assert (await wf.get(iid))["status"] == "cancelled"


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    from plinth.queue import backoff

    for attempt, full in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 30.0)):
        draws = {backoff(attempt, 2.0, 30.0) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in draws)
        assert len(draws) > 1  # jittered, so retries of many instances do not align


async def test_timer_until_a_date_and_escalation_to_another_node(wf: Harness) -> None:
    await wf.publish(
        {
            "late": flow(
                {
                    "wait": {"type": "timer", "until": "vars.at", "next": "ask"},
                    "ask": {
                        "type": "user_task",
                        "assignee": {"role": "analyst"},
                        "due": 0.05,
                        "escalate": {"next": "chase"},
                        "next": "done",
                    },
                    "chase": {"type": "assign", "set": {"chased": "true"}, "next": "done"},
                    "done": {"type": "end"},
                },
                "wait",
            )
        }
    )
    import asyncio
    import time

    at = time.time() + 0.1
    iid = await wf.start("late", {"at": at})
    for _ in range(300):  # the timer fires at `at`, the task escalates 0.05 s after it opens
        if (await wf.get(iid))["status"] != "running":
            break
        await asyncio.sleep(0.01)
        await wf.drain()
    inst = await wf.get(iid)
    assert inst["status"] == "completed" and inst["vars"]["chased"] is True
    assert [s["node"] for s in inst["timeline"]] == ["wait", "ask", "chase", "done"]
    assert inst["timeline"][0]["output"]["fired_at"] >= at
    assert inst["timeline"][1]["tasks"][0]["status"] == "cancelled"  # the late task closes
    assert await wf.tasks(user(wf, "ana")) == []
