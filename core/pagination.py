"""Keyset ("seek") pagination: a page is the rows after (or before) a cursor in the list's
order, read through the index that serves that order, so page 1 and page 500 cost the same and
nothing counts the whole list (issue 14). The page knows whether there is a next one by reading
one row more than it shows.

A cursor is the sort key of a page's last (or first) row, in the URL as `after=` / `before=`:
plain values joined by "~", read back by the field's own `to_python`. A cursor that does not
parse falls back to the first page, never a 500.
"""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet

CURSOR_MAX_LENGTH = 200
SEPARATOR = "~"


@dataclass(frozen=True)
class Key:
    """One column of a list's order: a model field name (or "pk"), descending or not."""

    name: str
    descending: bool = False

    def order(self) -> F:
        expression = F(self.name)
        return expression.desc() if self.descending else expression.asc()


@dataclass
class KeysetPage:
    """One page: its rows and the cursors of the pages either side (None at an end)."""

    object_list: list
    next_cursor: str | None = None
    previous_cursor: str | None = None
    number: int = 1  # for "Page 2": carried in the links, not counted
    base_query: dict = field(default_factory=dict)  # the list's filters, kept in the links
    is_keyset = True  # for the shared pagination template (Django's Page has no such flag)

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    def _link(self, **params) -> str:
        return "?" + urlencode({**self.base_query, **params})

    @property
    def next_link(self) -> str:
        return self._link(after=self.next_cursor, page=self.number + 1)

    @property
    def previous_link(self) -> str:
        if self.number <= 2:
            return self._link()  # the first page has no cursor: it stays current
        return self._link(before=self.previous_cursor, page=self.number - 1)


def _encode(values) -> str:
    return SEPARATOR.join(
        value.isoformat() if hasattr(value, "isoformat") else str(value) for value in values
    )


def _decode(model, keys: list[Key], raw: str) -> list | None:
    """The cursor's values by each key's field, or None when it does not parse."""
    if not raw or len(raw) > CURSOR_MAX_LENGTH:
        return None
    parts = raw.split(SEPARATOR)
    if len(parts) != len(keys):
        return None
    values = []
    for key, part in zip(keys, parts, strict=True):
        model_field = model._meta.pk if key.name == "pk" else model._meta.get_field(key.name)
        try:
            value = model_field.to_python(part)
        except (ValidationError, ValueError, TypeError):
            return None
        if value is None:
            return None
        values.append(value)
    return values


def _beyond(keys: list[Key], values: list, *, forward: bool) -> Q:
    """Rows strictly past `values` in the keys' order (before them when not `forward`).

    The first key's bound is also stated on its own (`>=` / `<=`), so the planner can start an
    index range scan there instead of filtering the whole list by the OR.
    """

    def past(key: Key) -> str:
        ascending = not key.descending if forward else key.descending
        return "gt" if ascending else "lt"

    condition = Q()
    equal = Q()
    for key, value in zip(keys, values, strict=True):
        condition |= equal & Q(**{f"{key.name}__{past(key)}": value})
        equal &= Q(**{key.name: value})
    first = keys[0]
    return Q(**{f"{first.name}__{past(first)}e": values[0]}) & condition  # gte / lte


def _page_number(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and 1 <= int(raw) <= 100_000 else 1


@dataclass(frozen=True)
class Seek:
    """Where a request's page starts: past `after`'s key, before `before`'s, or at the first
    row (both None); `number` is the page number its link carried."""

    after: list | None
    before: list | None
    number: int


def keyset_seek(request, model, *, keys: list[Key]) -> Seek:
    """The request's `after=` or `before=` cursor, read by the keys' fields; a missing or
    malformed one is the first page."""
    after = _decode(model, keys, request.GET.get("after", ""))
    before = None if after else _decode(model, keys, request.GET.get("before", ""))
    number = _page_number(request.GET.get("page")) if (after or before) else 1
    return Seek(after, before, number)


def keyset_slice(queryset: QuerySet, *, keys: list[Key], seek: Seek, size: int) -> QuerySet:
    """The `size + 1` rows of `queryset` past the seek's cursor, walked in the keys' order
    (reversed for a previous page: `keyset_assemble` turns them back). One query."""
    if seek.before is not None:
        reversed_keys = [Key(key.name, not key.descending) for key in keys]
        return queryset.filter(_beyond(keys, seek.before, forward=False)).order_by(
            *(key.order() for key in reversed_keys)
        )[: size + 1]
    ordered = queryset.order_by(*(key.order() for key in keys))
    if seek.after is not None:
        ordered = ordered.filter(_beyond(keys, seek.after, forward=True))
    return ordered[: size + 1]


def keyset_assemble(
    rows: list, *, keys: list[Key], seek: Seek, size: int, base_query: dict | None = None
) -> KeysetPage:
    """The page from the rows `keyset_slice` read (any objects with the keys as attributes)."""
    if seek.before is not None:
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        page = KeysetPage(rows, number=max(seek.number, 2 if more_before else 1))
        if rows:
            page.next_cursor = _cursor(rows[-1], keys)
            if more_before:
                page.previous_cursor = _cursor(rows[0], keys)
        if not page.has_previous:
            page.number = 1
    else:
        more = len(rows) > size
        rows = rows[:size]
        page = KeysetPage(rows, number=seek.number if seek.after else 1)
        if more:
            page.next_cursor = _cursor(rows[-1], keys)
        if seek.after is not None and rows:
            page.previous_cursor = _cursor(rows[0], keys)
    page.base_query = base_query or {}
    return page


def keyset_page(
    queryset: QuerySet, request, *, keys: list[Key], size: int, base_query: dict | None = None
) -> KeysetPage:
    """The page of `queryset` (ordered by `keys`, the last one unique, usually "pk") that the
    request's `after=` or `before=` cursor names; without one (or with a bad one) the first.

    One query: `size + 1` rows past the cursor, walked in the keys' order (reversed for a
    previous page, then turned back).
    """
    seek = keyset_seek(request, queryset.model, keys=keys)
    rows = list(keyset_slice(queryset, keys=keys, seek=seek, size=size))
    return keyset_assemble(rows, keys=keys, seek=seek, size=size, base_query=base_query)


def _cursor(row, keys: list[Key]) -> str:
    return _encode(getattr(row, key.name) for key in keys)
