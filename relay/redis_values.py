"""Redis replies as text.

The relay's connections speak RESP2 and return bytes (no `decode_responses`: stored tokens and
streams stay binary safe). redis-py's type hints cannot say that: one client class serves both
protocols, both decoding modes and every option of a command, so a reply is typed as the union of
all of them (`bytes | str`, or for streams `list | dict`). These helpers turn a reply into `str` in
one place, checking its shape at run time, instead of a cast or `.decode()` at every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class ReplyShapeError(TypeError):
    """A reply that is not what the command returns in RESP2: a bug in the caller, not bad data."""


def text(value: object) -> str:
    """A Redis string reply as str; bytes are UTF-8 (everything the relay writes is)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise ReplyShapeError(f"expected a string reply, got {type(value).__name__}")


def text_or_empty(value: object) -> str:
    """A reply that may be missing (GET of an absent key) as str, "" when missing."""
    return "" if value is None else text(value)


def text_dict(mapping: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """HGETALL's reply (or a stream entry's fields) with keys and values as str."""
    return {text(k): text(v) for k, v in mapping.items()}


def texts(values: Iterable[object]) -> list[str]:
    """SMEMBERS/ZRANGE-style replies (without scores) as a list of str, in the order given."""
    return [text(v) for v in values]


def stream_entries(raw: object) -> list[tuple[str, dict[str, str]]]:
    """XRANGE/XAUTOCLAIM/one stream of XREADGROUP: entries as (id, fields). An entry deleted while
    still pending comes back without fields; those are skipped."""
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise ReplyShapeError(f"expected a list of stream entries, got {type(raw).__name__}")
    out = []
    for entry in raw:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise ReplyShapeError("expected [id, fields] stream entries")
        entry_id, fields = entry
        if entry_id is None or not fields:
            continue
        if not isinstance(fields, Mapping):
            raise ReplyShapeError(f"expected stream fields as a mapping, got {type(fields).__name__}")
        out.append((text(entry_id), text_dict(fields)))
    return out


def read_streams(raw: object) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """XREAD/XREADGROUP: (stream, entries) per stream (RESP2 a list of pairs, RESP3 a mapping)."""
    if raw is None:
        return []
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    if not isinstance(pairs, Iterable):
        raise ReplyShapeError(f"expected streams, got {type(raw).__name__}")
    out = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ReplyShapeError("expected [stream, entries] pairs")
        out.append((text(pair[0]), stream_entries(pair[1])))
    return out


def scored_members(raw: object) -> list[tuple[str, float]]:
    """ZRANGE ... WITHSCORES: (member, score) pairs in order."""
    if not isinstance(raw, list | tuple):
        raise ReplyShapeError(f"expected scored members, got {type(raw).__name__}")
    out = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ReplyShapeError("expected [member, score] pairs")
        out.append((text(pair[0]), float(pair[1])))
    return out
