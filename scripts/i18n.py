"""Keeps the translation catalogues in step with the code.

    python scripts/i18n.py update    # add every new msgid of relay/ and adapters/ to each .po (empty
                                     # translation), mark the ones the code no longer uses obsolete
    python scripts/i18n.py missing   # list the msgids without a translation

After `update`, fill in the empty `msgstr`s; tests/relay/test_i18n.py fails until that is done.
The relay compiles the .po in memory when it starts: there is no .mo to build.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from tests.i18n_catalogue import PO, extract, read_catalogue


def template() -> Catalog:
    pot = Catalog(domain="relay", project="aitrader-relay")
    for found in extract():
        msgid = (found.msgid, found.plural) if found.plural else found.msgid
        flags = ("python-brace-format",) if "{" in found.msgid else ()
        pot.add(msgid, locations=[(found.where.rsplit(":", 1)[0], int(found.where.rsplit(":", 1)[1]))], flags=flags)
    return pot


def update() -> None:
    new = Catalog(locale="zh_Hans", domain="relay", project="aitrader-relay")
    catalogue = read_catalogue() if PO.exists() else new
    catalogue.update(template(), no_fuzzy_matching=True, update_creation_date=False)
    catalogue.fuzzy = False
    # Fixed dates, no source locations, sorted by msgid: helpers adding strings in parallel touch
    # different lines, so their .po changes merge without conflicts.
    catalogue.creation_date = catalogue.revision_date = datetime(2026, 1, 1, tzinfo=UTC)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as f:
        write_po(f, catalogue, width=0, no_location=True, sort_output=True, ignore_obsolete=True)


def missing() -> int:
    catalogue = read_catalogue()
    empty = [m.id for m in catalogue if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    for msgid in empty:
        print(msgid)
    return len(empty)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "update":
        update()
    elif what == "missing":
        sys.exit(1 if missing() else 0)
    else:
        sys.exit(__doc__)
