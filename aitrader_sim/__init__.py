"""A fake AI-Trader (ai4trade.ai) server that behaves like the real one where a client can tell.

`World` holds the state, `create_app` serves it over HTTP, `SimulatorServer` runs that on
127.0.0.1; `python -m aitrader_sim` does the same in its own process. Never imports the relay.
"""

from aitrader_sim.app import create_app
from aitrader_sim.demo import DemoSeed, run_activity, seed_demo
from aitrader_sim.records import Agent, ApiError, Faults
from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World

__all__ = [
    "Agent",
    "ApiError",
    "DemoSeed",
    "Faults",
    "SimulatorServer",
    "World",
    "create_app",
    "run_activity",
    "seed_demo",
]
