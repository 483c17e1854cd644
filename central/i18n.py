"""Letters to parents in the school's language, through standard gettext catalogues (Babel).

The catalogues are central/locale/<lang>/LC_MESSAGES/central.po, extracted from the letter
templates with `pybabel extract -F central/babel.cfg -o central/locale/central.pot central`
and updated with `pybabel update -i central/locale/central.pot -d central/locale -D central`.
The .po files are compiled to gettext's binary .mo form in memory when first used (Babel's
write_mo), so the repository holds only text; a language whose catalogue does not translate a
message falls back to the English text.
"""

from __future__ import annotations

import io
from functools import cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from central.errors import CentralError

DOMAIN = "central"
LANGUAGES = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"


def check_language(code: str) -> str:
    code = code.strip()
    if code not in LANGUAGES:
        raise CentralError(
            f"language {code!r}: central ships letters in {', '.join(sorted(LANGUAGES))}"
        )
    return code


@cache
def translations(code: str) -> Translations:
    check_language(code)
    po = resources.files("central").joinpath("locale", code, "LC_MESSAGES", f"{DOMAIN}.po")
    catalog = read_po(io.BytesIO(po.read_bytes()), locale=code, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog)
    mo.seek(0)
    return Translations(mo, domain=DOMAIN)


def gettext_for(code: str | None):  # noqa: ANN201 - the gettext callable
    return translations(code or DEFAULT).gettext
