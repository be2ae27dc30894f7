"""The event bus: handlers by topic pattern, in order of subscription, remote events to the
cluster handlers only, and (un)subscribing taking effect on the next publish."""

from __future__ import annotations

from plinth.events import Event, EventBus, Handler


async def test_handlers_by_pattern_in_order_and_changes_take_effect() -> None:
    bus = EventBus()
    seen: list[str] = []

    def recorder(name: str) -> Handler:
        async def handler(event: Event) -> None:
            seen.append(f"{name}:{event.topic}")

        return handler

    records, everything, cache = recorder("records"), recorder("all"), recorder("cache")
    bus.subscribe("record.*", records)
    bus.subscribe("*", everything)
    bus.subscribe("record.created", cache, cluster=True)
    await bus.publish(Event("record.created", "t"))
    await bus.publish(Event("app.published", "t"))
    assert seen == ["records:record.created", "all:record.created", "cache:record.created"] + [
        "all:app.published"
    ]
    seen.clear()
    await bus.deliver(Event("record.created", "t", remote=True))  # from another node
    assert seen == ["cache:record.created"]
    seen.clear()
    bus.unsubscribe(everything)
    late = recorder("late")
    bus.subscribe("record.created", late)
    await bus.publish(Event("record.created", "t"))
    assert seen == ["records:record.created", "cache:record.created", "late:record.created"]


async def test_a_handler_subscribing_during_a_publish_sees_the_next_one() -> None:
    bus = EventBus()
    seen: list[str] = []

    async def second(event: Event) -> None:
        seen.append("second")

    async def first(event: Event) -> None:
        seen.append("first")
        bus.subscribe("x", second)

    bus.subscribe("x", first)
    await bus.publish(Event("x", None))
    assert seen == ["first"]
    await bus.publish(Event("x", None))
    assert seen == ["first", "first", "second"]
