"""Class lists of pseudonymous codes: imported from CSV (class, code) or generated.

The school keeps the names; central only ever holds codes. A CSV whose header
or cells look like names or dates of birth is refused with a message that says
which column and why, so a list exported straight from a school register cannot
land here by mistake.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central import audit
from central.contract import ID_PATTERN, TOKEN_PATTERN
from central.errors import CentralError
from central.models import ClassCode

MAX_ROWS = 2000
MAX_GENERATE = 200
# header words that name a person or a birth date, in the languages central ships
NAME_HEADERS = re.compile(
    r"name|first|last|surname|given|family|forename|pupil|student|child|"
    r"birth|born|dob|geburt|vorname|nachname|nom|prénom|naissance|fecha|nombre|apellido",
    re.I,
)
DATE_CELL = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\s*$")
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed by hand


class ClassListError(CentralError):
    """A class list that central refuses; the message names the line or column."""


@dataclass(frozen=True)
class Entry:
    class_name: str
    code: str


def new_code() -> str:
    """A fresh pseudonym: `c-` and 8 characters (40 bits), valid as a session token."""
    return "c-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def _check_class(name: str, where: str) -> str:
    name = name.strip()
    if not ID_PATTERN.fullmatch(name):
        raise ClassListError(
            f"{where}: class {name!r} must be 1-64 of A-Z a-z 0-9 _ . - (for example 4B or year-5)"
        )
    return name


def _looks_like_a_name(cell: str) -> bool:
    """Letters only (a pseudonym has a digit somewhere: c-7K2M9QXA, child_0042)."""
    letters = cell.replace("-", "").replace("_", "").replace("'", "")
    return bool(letters) and letters.isalpha()


def _looks_like_a_date(cell: str) -> bool:
    """2016-03-14, 14/03/2016, 14.3.2016, or 8 digits that read as YYYYMMDD or DDMMYYYY."""
    if DATE_CELL.match(cell):
        return True
    if len(cell) == 8 and cell.isdigit():
        for year, month, day in ((cell[:4], cell[4:6], cell[6:]), (cell[4:], cell[2:4], cell[:2])):
            if 1990 <= int(year) <= 2035 and 1 <= int(month) <= 12 and 1 <= int(day) <= 31:
                return True
    return False


def parse_csv(text: str) -> list[Entry]:
    """Entries of a `class,code` CSV; ClassListError naming the column or line otherwise."""
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(c.strip() for c in r)]
    if not rows:
        raise ClassListError("the file is empty: a class list is a CSV with the columns class,code")
    header = [c.strip().lower() for c in rows[0]]
    for column in header:
        if column not in ("class", "code", "class_name", "classname") and NAME_HEADERS.search(
            column
        ):
            raise ClassListError(
                f"column {column!r} looks like names or dates of birth: central keeps only "
                "pseudonymous codes. Remove that column (the school keeps the names) and import "
                "only class,code"
            )
    if header != ["class", "code"]:
        raise ClassListError(
            f"the header is {','.join(header)!r}: a class list has exactly the columns class,code"
        )
    if len(rows) - 1 > MAX_ROWS:
        raise ClassListError(f"{len(rows) - 1} rows: import at most {MAX_ROWS} at a time")
    entries: list[Entry] = []
    seen: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        where = f"line {number}"
        if len(row) != 2:
            raise ClassListError(f"{where}: {len(row)} cells; a row is class,code")
        class_name, code = _check_class(row[0], where), row[1].strip()
        if _looks_like_a_date(code):
            raise ClassListError(
                f"{where}: {code!r} looks like a date of birth: import pseudonymous codes only"
            )
        if " " in code or _looks_like_a_name(code):
            raise ClassListError(
                f"{where}: {code!r} looks like a name: import pseudonymous codes only "
                "(letters and digits such as c-7K2M9QXA; or let central generate them)"
            )
        if not TOKEN_PATTERN.fullmatch(code):
            raise ClassListError(f"{where}: code {code!r} must be 8-128 of A-Z a-z 0-9 _ -")
        if code in seen:
            raise ClassListError(f"{where}: code {code!r} appears twice in the file")
        seen.add(code)
        entries.append(Entry(class_name, code))
    return entries


def add_entries(db: Session, site_id: str, entries: list[Entry], by: str) -> int:
    """Store the entries after those of their class; a code the school already has is refused."""
    taken = set(
        db.scalars(
            select(ClassCode.code).where(
                ClassCode.site_id == site_id, ClassCode.code.in_([e.code for e in entries])
            )
        )
    )
    if taken:
        raise ClassListError(
            f"code(s) already on a class list of {site_id}: {', '.join(sorted(taken)[:5])}"
        )
    next_position: dict[str, int] = {}
    for entry in entries:
        if entry.class_name not in next_position:
            last = db.scalar(
                select(func.max(ClassCode.position)).where(
                    ClassCode.site_id == site_id, ClassCode.class_name == entry.class_name
                )
            )
            next_position[entry.class_name] = (last or 0) + 1
        db.add(
            ClassCode(
                site_id=site_id,
                code=entry.code,
                class_name=entry.class_name,
                position=next_position[entry.class_name],
                added_by=by[:64],
            )
        )
        next_position[entry.class_name] += 1
    audit.record(db, by, "class_list", site_id=site_id, detail=f"{len(entries)} code(s) added")
    return len(entries)


def generate(db: Session, site_id: str, class_name: str, count: int, by: str) -> list[str]:
    class_name = _check_class(class_name, "generate")
    if not 1 <= count <= MAX_GENERATE:
        raise ClassListError(f"generate 1 to {MAX_GENERATE} codes at a time, not {count}")
    codes: list[str] = []
    while len(codes) < count:
        code = new_code()
        if code not in codes and db.get(ClassCode, (site_id, code)) is None:
            codes.append(code)
    add_entries(db, site_id, [Entry(class_name, c) for c in codes], by)
    return codes


def classes(db: Session, sites: list[str]) -> list[tuple[str, str, int]]:
    """(site, class, number of codes) for these sites."""
    return [
        (s, c, n)
        for s, c, n in db.execute(
            select(ClassCode.site_id, ClassCode.class_name, func.count())
            .where(ClassCode.site_id.in_(sites))
            .group_by(ClassCode.site_id, ClassCode.class_name)
            .order_by(ClassCode.site_id, ClassCode.class_name)
        )
    ]


def codes_of(db: Session, site_id: str, class_name: str) -> list[str]:
    return list(
        db.scalars(
            select(ClassCode.code)
            .where(ClassCode.site_id == site_id, ClassCode.class_name == class_name)
            .order_by(ClassCode.position)
        )
    )


def qr_svg(code: str) -> str:
    """The code as an inline SVG QR code (segno: pure Python, no image library, no inline style)."""
    import segno

    out = io.BytesIO()
    segno.make(code, error="m", micro=False).save(
        out, kind="svg", xmldecl=False, svgns=True, scale=4, title=code, svgclass="qr"
    )
    return out.getvalue().decode("utf-8")
