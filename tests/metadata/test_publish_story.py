"""The publish pipeline runs its steps phase by phase and refuses to run without a required one."""

from __future__ import annotations

import pytest

from plinth.metadata.publish import MissingPhase, PublishContext, Publishing, StepResult
from plinth.server import Platform


class Noted:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        self.log.append(self.name)


def test_steps_run_in_phase_order_whatever_the_registration_order() -> None:
    log: list[str] = []
    publishing = Publishing()
    publishing.register("migrate", Noted("tables", log))
    publishing.register("check", Noted("packs", log))
    publishing.register("compile", Noted("entities", log))
    publishing.register("check", Noted("references", log))
    names = [(phase, step.name) for phase, step in publishing.steps()]
    assert names == [
        ("validate", "validate"),
        ("check", "packs"),
        ("check", "references"),
        ("compile", "entities"),
        ("migrate", "tables"),
    ]
    publishing.register("check", Noted("packs", log))  # same name: replaced in its place
    assert [s.name for _, s in publishing.steps()][1:3] == ["packs", "references"]


async def test_a_required_phase_without_a_step_fails_loudly() -> None:
    publishing = Publishing()
    publishing.require("check", "compile", "migrate")
    publishing.register("check", Noted("packs", []))
    with pytest.raises(MissingPhase, match="compile, migrate"):
        publishing.verify()
    with pytest.raises(MissingPhase):
        await publishing.run(None)  # type: ignore[arg-type]  (refused before any step)


def test_the_platform_wires_every_phase(platform: Platform) -> None:
    phases = {phase for phase, _ in platform.metadata.publishing.steps()}
    assert phases == {"validate", "check", "compile", "migrate"}
    platform.metadata.publishing.verify()
