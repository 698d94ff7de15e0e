"""Fake Telegram Bot API and Discord (REST + gateway) servers on loopback, as strict as the real
platforms: used by the tests, the benchmarks and the demo."""
