"""`retried`: the first attempt runs without a retrier; a failure is retried exactly as tenacity says."""

from __future__ import annotations

import pytest
from tenacity import stop_after_attempt, wait_none

from relay.retrying import retried


class Flaky:
    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"attempt {self.calls}")
        return "ok"


async def test_success_first_time_calls_once() -> None:
    call = Flaky(0)
    assert await retried(call, retry_on=ConnectionError, stop=stop_after_attempt(3), wait=wait_none()) == "ok"
    assert call.calls == 1


async def test_failures_are_retried_and_the_first_one_counts_as_an_attempt() -> None:
    call = Flaky(2)
    assert await retried(call, retry_on=ConnectionError, stop=stop_after_attempt(3), wait=wait_none()) == "ok"
    assert call.calls == 3
    always = Flaky(10)
    with pytest.raises(ConnectionError, match="attempt 3"):
        await retried(always, retry_on=ConnectionError, stop=stop_after_attempt(3), wait=wait_none())
    assert always.calls == 3


async def test_other_errors_are_not_retried() -> None:
    call = Flaky(1, error=ValueError)
    with pytest.raises(ValueError, match="attempt 1"):
        await retried(call, retry_on=ConnectionError, stop=stop_after_attempt(3), wait=wait_none())
    assert call.calls == 1
