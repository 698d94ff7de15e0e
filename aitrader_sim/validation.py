"""Request parsing that fails the way FastAPI does: 422 with pydantic's error list.

The body models mirror `routes_models.py` upstream (extra keys ignored), so a client
that sends lists for `symbols` or omits `market` sees the same 422 as in production.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request


class AgentLogin(BaseModel):
    name: str
    password: str


class AgentRegister(BaseModel):
    name: str
    password: str
    wallet_address: str | None = None
    initial_balance: float = 100000.0
    positions: list[dict[str, Any]] | None = None


class AgentMessageCreate(BaseModel):
    agent_id: int
    type: str
    content: str
    data: dict[str, Any] | None = None


class AgentTaskCreate(BaseModel):
    agent_id: int
    type: str
    input_data: dict[str, Any] | None = None


class MarkReadRequest(BaseModel):
    categories: list[str]


class ReplyRequest(BaseModel):
    signal_id: int
    content: str


class StrategyRequest(BaseModel):
    market: str
    title: str
    content: str
    symbols: str | None = None
    tags: str | None = None


class DiscussionRequest(BaseModel):
    market: str
    symbol: str | None = None
    title: str
    content: str
    tags: str | None = None


class FollowRequest(BaseModel):
    leader_id: int


class RealtimeSignalRequest(BaseModel):
    market: str
    action: str
    symbol: str
    price: float
    quantity: float
    content: str | None = None
    executed_at: str
    token_id: str | None = None
    outcome: str | None = None


class RequestValidationError(Exception):
    """Answered as 422 {"detail": errors}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = errors


M = TypeVar("M", bound=BaseModel)
_INT = TypeAdapter(int)


class Params:
    """Collects every parameter error of one request, then raises them together."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.errors: list[dict[str, Any]] = []

    def _int(self, where: str, name: str, raw: str | None, default: int | None) -> int:
        if raw is None:
            if default is None:
                self.errors.append({"type": "missing", "loc": [where, name], "msg": "Field required", "input": None})
                return 0
            return default
        try:
            return _INT.validate_python(raw)
        except ValidationError as exc:
            self.errors.extend(_with_loc(exc, [where, name]))
            return 0

    def path_int(self, name: str) -> int:
        return self._int("path", name, self.request.path_params.get(name), None)

    def query_int(self, name: str, default: int) -> int:
        return self._int("query", name, self.request.query_params.get(name), default)

    def query_str(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    async def body(self, model: type[M]) -> M | None:
        raw = await self.request.body()
        if not raw:
            self.errors.append({"type": "missing", "loc": ["body"], "msg": "Field required", "input": None})
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            pos = getattr(exc, "pos", 0)
            self.errors.append(
                {
                    "type": "json_invalid",
                    "loc": ["body", pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": getattr(exc, "msg", str(exc))},
                }
            )
            return None
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            self.errors.extend(_with_loc(exc, ["body"]))
            return None

    def check(self) -> None:
        if self.errors:
            raise RequestValidationError(self.errors)


def _with_loc(exc: ValidationError, prefix: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": err["type"],
            "loc": prefix + [p for p in err["loc"]],
            "msg": err["msg"],
            "input": err["input"],
        }
        if "ctx" in err:
            item["ctx"] = {
                k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in err["ctx"].items()
            }
        out.append(item)
    return out
