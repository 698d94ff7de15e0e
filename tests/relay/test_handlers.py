"""The dispatch table and the command specs describe the same commands, one handler each."""

from __future__ import annotations

from relay.commands import HANDLERS, Commands
from relay.specs import COMMANDS


def test_every_spec_has_exactly_one_handler_and_every_handler_a_spec() -> None:
    names = [spec.name for spec in COMMANDS]
    assert len(names) == len(set(names)), "a command is specified twice"
    assert sorted(HANDLERS) == sorted(names)


def test_each_name_runs_its_own_handler_and_no_handler_is_left_out() -> None:
    # A miswired line ("reply": Commands.cmd_replies) or a handler written but never listed fails here.
    assert {name: handler.__name__ for name, handler in HANDLERS.items()} == {name: f"cmd_{name}" for name in HANDLERS}
    written = {name for name in vars(Commands) if name.startswith("cmd_")}
    assert written == {handler.__name__ for handler in HANDLERS.values()}
