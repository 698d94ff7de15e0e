"""Fake servers and adapters the tests drive the real code against."""
