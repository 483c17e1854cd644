"""Who may see what: one place that scopes every query and every page by role and school.

A nurse sees only her schools (anything else is answered 404, as if it did
not exist), a district health officer sees all schools and the statistics, a
technician sees the fleet only, never a result.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select

from central.models import NURSE, OFFICER, TECHNICIAN, Result


class Forbidden(Exception):
    """The viewer's role may not open this page."""


class NotVisible(Exception):
    """The thing exists or not; to this viewer it does not (another school)."""


@dataclass(frozen=True)
class Viewer:
    username: str
    role: str
    schools: frozenset[str]  # a nurse's schools; empty for the other roles
    csrf: str = ""

    @property
    def all_schools(self) -> bool:
        return self.role in (OFFICER, TECHNICIAN)

    @property
    def sees_results(self) -> bool:
        return self.role in (NURSE, OFFICER)

    def can_see_site(self, site_id: str) -> bool:
        return self.all_schools or site_id in self.schools

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"the {self.role} role cannot open this page")

    def require_site(self, site_id: str) -> None:
        if not self.can_see_site(site_id):
            raise NotVisible(site_id)

    def scope(self, query: Select, site_column=Result.site_id) -> Select:  # noqa: ANN001 - a column
        """Restrict a query to the viewer's schools."""
        if self.all_schools:
            return query
        return query.where(site_column.in_(sorted(self.schools)))
