"""Querysets compiled once per process and database, then run with new values.

Building a queryset with a dozen nested `Exists`/`Subquery` expressions costs the ORM several
milliseconds of Python, every time, while the database answers it in a fraction of one (the
navigation badges on every page: issue 14). A `PreparedQuery` builds its queryset once with
sample values that cannot occur in real data, compiles it, remembers where each sample landed
among the SQL parameters, and from then on only swaps the real values in.

The queryset stays the single definition of what is asked: the builder is the same code a
normal call would run. Its one rule: every value passed in must reach the SQL unchanged (no
arithmetic on it inside the builder: compute `now - timedelta(...)` outside and pass it in).
A value may be None when the builder leaves its condition out for None (an optional filter, a
page without a cursor): each combination of absent values is compiled once, on first use.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

# Sample values no real row or clock can hold, one per parameter name.
_SAMPLE_INT = -7_340_033
_SAMPLE_MOMENT = datetime(1901, 2, 3, 4, 5, 6, 789_012, tzinfo=UTC)
_SAMPLE_STR = "\u2063prepared-sample-{}\u2063"  # invisible separators: never typed


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    slots: dict[str, tuple[int, ...]]  # parameter name -> positions in `params`
    # (column, converters, expression): what the queryset would do to each value it reads.
    converters: tuple


class PreparedQuery:
    """`build(**values)` -> a `values_list` queryset; `rows(**values)` runs it compiled and
    returns the rows the queryset would (its fields' and the backend's converters applied).

    `kinds` names each parameter's kind: "int" (an id), "datetime" (an aware moment) or "str".
    """

    def __init__(self, build: Callable[..., QuerySet], **kinds: str):
        for name, kind in kinds.items():
            if kind not in ("int", "datetime", "str"):
                raise ValueError(f"Unknown parameter kind {kind!r} for {name!r}.")
        self.build = build
        self.kinds = kinds
        self._compiled: dict[tuple, _Compiled] = {}

    def _samples(self, absent: frozenset) -> dict:
        samples = {}
        for offset, (name, kind) in enumerate(self.kinds.items()):
            if name in absent:
                samples[name] = None
            elif kind == "int":
                samples[name] = _SAMPLE_INT - offset
            elif kind == "datetime":
                samples[name] = _SAMPLE_MOMENT.replace(microsecond=offset)
            else:
                samples[name] = _SAMPLE_STR.format(offset)
        return samples

    def _adapt(self, connection, kind: str, value):
        if kind == "datetime":
            return connection.ops.adapt_datetimefield_value(value)
        return value

    def _compile(self, alias: str, absent: frozenset) -> _Compiled:
        connection = connections[alias]
        samples = self._samples(absent)
        compiler = self.build(**samples).query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        slots = {}
        for name, sample in samples.items():
            if sample is None:
                continue
            adapted = self._adapt(connection, self.kinds[name], sample)
            slots[name] = tuple(i for i, param in enumerate(params) if param == adapted)
            if not slots[name]:
                raise ValueError(f"{name!r} does not reach the SQL unchanged.")
        columns = [column for column, _sql, _alias in compiler.select[: compiler.col_count]]
        converters = tuple(
            (position, functions, expression)
            for position, (functions, expression) in compiler.get_converters(columns).items()
        )
        return _Compiled(sql=sql, params=tuple(params), slots=slots, converters=converters)

    def rows(self, *, using: str = DEFAULT_DB_ALIAS, **values) -> list[tuple]:
        """The query's rows for `values` (every parameter named; None where absent)."""
        absent = frozenset(name for name in self.kinds if values[name] is None)
        compiled = self._compiled.get((using, absent))
        if compiled is None:
            compiled = self._compiled[using, absent] = self._compile(using, absent)
        connection = connections[using]
        params = list(compiled.params)
        for name, positions in compiled.slots.items():
            adapted = self._adapt(connection, self.kinds[name], values[name])
            for position in positions:
                params[position] = adapted
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if not compiled.converters:
            return rows
        converted = []
        for row in rows:
            row = list(row)
            for position, functions, expression in compiled.converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            converted.append(tuple(row))
        return converted
