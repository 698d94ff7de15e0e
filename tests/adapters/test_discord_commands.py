"""The declared slash commands mirror the core's command table (pure, no network)."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord import app_commands

from adapters.discord.commands import LINK_FIELDS, build_commands, link_modal
from relay.models import CommandSpec
from relay.specs import COMMANDS

Declared = dict[str, app_commands.Command[Any, ..., Any]]


async def _noop(_interaction: discord.Interaction, _name: str, _args: dict[str, str]) -> None:
    return None


@pytest.fixture
async def declared() -> Declared:
    return {c.name: c for c in build_commands(_noop)}


async def test_declared_command_set_equals_the_core_specs(declared: Declared) -> None:
    assert set(declared) == {spec.name for spec in COMMANDS}


@pytest.mark.parametrize("spec", [s for s in COMMANDS if s.name != "link"], ids=lambda s: s.name)
async def test_each_command_has_the_specs_parameters(declared: Declared, spec: CommandSpec) -> None:
    command = declared[spec.name]
    assert [p.name for p in command.parameters] == [p.name for p in spec.params]
    for declared_param, param in zip(command.parameters, spec.params, strict=True):
        assert declared_param.required == param.required, param.name
        assert declared_param.description == param.description[:100]
        assert sorted(c.value for c in declared_param.choices) == sorted(param.choices), param.name
    assert command.description == spec.summary[:100]


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
async def test_subscription_changes_default_to_manage_channels(declared: Declared, spec: CommandSpec) -> None:
    permissions = declared[spec.name].default_permissions
    if spec.admin_in_groups:
        assert permissions is not None and permissions.manage_channels
    else:
        assert permissions is None


async def test_link_asks_in_a_modal_not_in_options(declared: Declared) -> None:
    spec = next(s for s in COMMANDS if s.name == "link")
    assert declared["link"].parameters == []  # an option value would show in the channel
    modal = link_modal().to_dict()
    fields = [row["component"]["custom_id"] for row in modal["components"]]
    assert tuple(fields) == LINK_FIELDS == tuple(p.name for p in spec.params)
    token, mode = (row["component"] for row in modal["components"])
    assert token["required"] and not mode["required"]
    assert sorted(o["value"] for o in mode["options"]) == sorted(spec.params[1].choices)
