"""The platform-neutral core of the AI-Trader chat relay."""

__version__ = "0.1.0"
