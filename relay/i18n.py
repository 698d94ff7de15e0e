"""Translations: English (the source language, in the code) and Simplified Chinese (a gettext catalogue).

Every user-facing string is written in English inside a translation call and looked up per reply:

    t = catalogues.translator(command.language)
    t.gettext("Removed subscription #{sub_id}.", sub_id=sub_id)
    t.ngettext("{n} reply", "{n} replies", count)      # n is filled in; Chinese has one form

Strings declared away from any reply (command descriptions in `relay.specs`, exception sentences)
are marked with `N_()` and translated where they are shown. Placeholders are named (`{sub_id}`),
never positional, so a translation may reorder them; f-strings cannot be translated and are not
used for user-facing text.

There is no module state: a `Catalogues` is loaded once by whoever builds the core and hands out
immutable `Translator`s, one per reply. The core localises its replies itself (the chat's language
lives in Redis, next to its other settings; queued notifications are rendered once per language),
so adapters show text as they receive it and never need to know which language it is in.

Catalogues: `relay/locale/<lang>/LC_MESSAGES/relay.po`, installed as package data, is the only
form in the repository: it is compiled in memory when the process starts (Babel reads it, the
standard library's `gettext` answers the lookups and evaluates its plural rule), so there is no
`.mo` file to keep in step or to conflict on. `python scripts/i18n.py update` adds new strings of
the code to each `.po`; `tests/relay/test_i18n.py` fails while any has no Chinese entry.
"""

from __future__ import annotations

import gettext
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "relay"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "en"
# Our code -> (the catalogue's directory name, the name shown to users). English has no catalogue:
# the msgids are the English text.
LANGUAGES: dict[str, tuple[str | None, str]] = {
    "en": (None, "English"),
    "zh": ("zh_Hans", "简体中文 (Simplified Chinese)"),
}


def N_(message: str) -> str:
    """Marks a string for extraction where it is declared; it is translated where it is shown."""
    return message


def language_of(locale: str | None) -> str | None:
    """The supported language for a platform's locale tag, or None when it names none of ours.

    Telegram sends IETF tags ("en", "zh-hans", "pt-br"); Discord its locales ("en-US", "zh-CN",
    "zh-TW"). Every Chinese tag, Traditional included, gets Simplified Chinese: the only Chinese
    catalogue, and closer to a Traditional reader than English."""
    if not locale:
        return None
    primary = locale.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


@dataclass(frozen=True, slots=True)
class Translator:
    """One language's lookups. Immutable; cheap to hand to every function that renders text."""

    language: str
    translations: gettext.NullTranslations

    def gettext(self, message: str, /, **params: object) -> str:
        return self._format(self.translations.gettext(message), message, params)

    def ngettext(self, singular: str, plural: str, n: int, /, **params: object) -> str:
        """The form for `n` ("1 reply", "2 replies"; Chinese has one), with `{n}` filled in."""
        chosen = self.translations.ngettext(singular, plural, n)
        english = singular if n == 1 else plural
        return self._format(chosen, english, {"n": n, **params})

    def _format(self, text: str, english: str, params: Mapping[str, object]) -> str:
        if not params:
            return text
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            # A broken placeholder in a translation must not cost the user the reply.
            log.warning("i18n: bad placeholders in the %s translation of %r", self.language, english)
            return english.format(**params)


def compile_po(path: Path) -> gettext.GNUTranslations:
    """A .po file as the standard library's translations (through an in-memory .mo)."""
    # Imported here: only the process start needs Babel, not every importer of this module.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        catalogue = read_po(f)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


ENGLISH = Translator(DEFAULT_LANGUAGE, gettext.NullTranslations())


class Catalogues:
    """The compiled catalogues of every supported language, loaded once per process."""

    def __init__(self, translations: Mapping[str, gettext.NullTranslations]) -> None:
        self._translators = {lang: Translator(lang, t) for lang, t in translations.items()}
        self._translators.setdefault(DEFAULT_LANGUAGE, ENGLISH)

    @classmethod
    def load(cls, directory: Path = LOCALE_DIR) -> Catalogues:
        loaded: dict[str, gettext.NullTranslations] = {}
        for lang, (folder, _) in LANGUAGES.items():
            if folder is None:
                continue
            loaded[lang] = compile_po(directory / folder / "LC_MESSAGES" / f"{DOMAIN}.po")
        return cls(loaded)

    def translator(self, language: str | None) -> Translator:
        """The language's translator; English for an unknown or empty code."""
        return self._translators.get(language or DEFAULT_LANGUAGE) or self._translators[DEFAULT_LANGUAGE]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(LANGUAGES)
