"""Set-based writes without model instances, for the sweeps that write thousands of rows.

Inserting is three steps, so that a caller can do the costly middle one on a worker thread
while its connection is busy with other statements:

    ids = draw_ids(model=..., count=...)          the primary keys, drawn first (database)
    prepared = prepare_insert(model=..., columns=..., rows=...)   the rows, formatted for the
                                                  backend: pure, no I/O, thread-safe
    insert_prepared(prepared)                     one COPY (PostgreSQL: the server's cheapest
                                                  way in, no statement text to parse) or
                                                  multi-row INSERTs under SQLite's parameter
                                                  limit

No `Model.__init__`, no signals, no statement per row; constraints, unique indexes and
foreign keys are checked as for any insert. `insert_rows` does the three at once.
`update_rows` updates rows by primary key (saying which changed, if asked). Values go to the
driver as they are: the caller prepares what needs preparing (`field.get_db_prep_save` for a
datetime; JSON as its text, `json.dumps`).
"""

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connections, router

# PostgreSQL's wire protocol counts parameters in 16 bits: no statement may carry more.
POSTGRES_MAX_PARAMS = 65535


def batch_size(connection, column_count: int, row_count: int) -> int:
    """Rows per INSERT so that one statement's parameters stay within the backend's limit."""
    limit = connection.ops.bulk_batch_size(["column"] * column_count, range(row_count))
    return max(1, min(limit, POSTGRES_MAX_PARAMS // column_count, row_count))


def draw_ids(*, model, count: int, using: str | None = None) -> list[int]:
    """`count` fresh primary keys for `model`, to insert with: PostgreSQL draws them from the
    table's sequence (never handed out twice, even to concurrent transactions); SQLite, whose
    writers are serialised by the transaction's write lock, takes the next ones after both
    the largest id and the AUTOINCREMENT counter. Call it inside the transaction that inserts
    them."""
    if count <= 0:
        return []
    using = using or router.db_for_write(model)
    connection = connections[using]
    meta = model._meta
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, count],
            )
            return [row[0] for row in cursor.fetchall()]
        if not connection.in_atomic_block:
            raise RuntimeError("draw_ids needs the transaction that inserts the rows.")
        quote = connection.ops.quote_name
        cursor.execute(
            f"SELECT max(coalesce((SELECT max({quote(meta.pk.column)}) FROM "
            f"{quote(meta.db_table)}), 0), coalesce((SELECT seq FROM sqlite_sequence "
            "WHERE name = %s), 0))",
            [meta.db_table],
        )
        last = cursor.fetchone()[0]
        return list(range(last + 1, last + 1 + count))


@dataclass(frozen=True)
class PreparedInsert:
    """Rows formatted for one backend, ready for `insert_prepared`."""

    using: str
    table: str
    columns: tuple[str, ...]  # database column names
    count: int
    copy_data: bytes | None = None  # PostgreSQL: the COPY payload
    rows: tuple[tuple, ...] = ()  # elsewhere: the value tuples


def prepare_insert(
    *, model, columns: Sequence[str], rows: Iterable[Sequence], connection=None
) -> PreparedInsert:
    """Format `rows` (tuples of values in `columns` order, attnames such as `session_id`, the
    primary key included) for `model`'s table on `connection` (the Django connection that
    will insert them; by default this thread's for the model). No I/O: safe on a worker
    thread, given the inserting thread's connection, while that runs other statements
    (PostgreSQL's rows are formatted with its adapters into COPY text, as `copy.write_row`
    would, but into memory)."""
    if connection is None:
        connection = connections[router.db_for_write(model)]
    using = connection.alias
    fields = {field.attname: field.column for field in model._meta.concrete_fields}
    names = tuple(fields[name] for name in columns)
    rows = list(rows)
    if connection.vendor != "postgresql":
        return PreparedInsert(using, model._meta.db_table, names, len(rows), rows=tuple(rows))
    from psycopg.copy import Copy, FileWriter

    buffer = io.BytesIO()
    # A cursor object only lends its adaptation context here; it runs no statement.
    with Copy(connection.connection.cursor(), writer=FileWriter(buffer)) as copy:
        for row in rows:
            copy.write_row(row)
    return PreparedInsert(
        using, model._meta.db_table, names, len(rows), copy_data=buffer.getvalue()
    )


def insert_prepared(prepared: PreparedInsert) -> int:
    """Insert what `prepare_insert` formatted; returns how many rows went in."""
    if not prepared.count:
        return 0
    connection = connections[prepared.using]
    quote = connection.ops.quote_name
    table = quote(prepared.table)
    names = ", ".join(quote(name) for name in prepared.columns)
    with connection.cursor() as cursor:
        if prepared.copy_data is not None:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                copy.write(prepared.copy_data)
            return prepared.count
        placeholder = "(" + ", ".join(["%s"] * len(prepared.columns)) + ")"
        size = batch_size(connection, len(prepared.columns), prepared.count)
        for start in range(0, prepared.count, size):
            batch = prepared.rows[start : start + size]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([placeholder] * len(batch))}",
                [value for row in batch for value in row],
            )
    return prepared.count


def insert_rows(
    *, model, columns: Sequence[str], rows: Iterable[Sequence], using: str | None = None
) -> list[int]:
    """Draw the primary keys, then insert `rows` (value tuples in `columns` order, without
    the primary key) into `model`'s table at once; returns the new primary keys, in the
    rows' order."""
    rows = list(rows)
    ids = draw_ids(model=model, count=len(rows), using=using)
    pk = model._meta.pk.attname
    insert_prepared(
        prepare_insert(
            model=model,
            columns=(pk, *columns),
            rows=[(pk_value, *row) for pk_value, row in zip(ids, rows, strict=True)],
            connection=connections[using or router.db_for_write(model)],
        )
    )
    return ids


def update_rows(
    *,
    model,
    pks: Iterable,
    values: dict,
    where: dict | None = None,
    returning: Sequence[str] = (),
    using: str | None = None,
) -> int | list[tuple]:
    """`UPDATE <table> SET <values> WHERE pk IN <pks> [AND <column> = <value> ...]`, where a
    `where` value that is a tuple or list means `IN`. Returns how many rows changed, or with
    `returning` the named columns of each changed row (RETURNING: which rows a conditional
    update changed, in the same statement). `values` and `where` map attnames to plain values,
    prepared here for the backend.

    On PostgreSQL the primary keys go as one array parameter (`= ANY(%s)`): a thousand ids
    cost one parameter, not a thousand to resolve and quote. Elsewhere an IN list, batched
    under the parameter limit. RETURNING needs PostgreSQL or SQLite 3.35+."""
    pks = list(pks)
    if not pks:
        return [] if returning else 0
    using = using or router.db_for_write(model)
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = {field.attname: field for field in model._meta.concrete_fields}

    def prepared(name: str, value):
        return fields[name].get_db_prep_save(value, connection)

    set_sql = ", ".join(f"{quote(fields[name].column)} = %s" for name in values)
    set_params = [prepared(name, value) for name, value in values.items()]
    conditions, where_params = [], []
    for name, value in (where or {}).items():
        column = quote(fields[name].column)
        if isinstance(value, (tuple, list)):
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            where_params.extend(prepared(name, each) for each in value)
        else:
            conditions.append(f"{column} = %s")
            where_params.append(prepared(name, value))
    where_sql = "".join(f" AND {condition}" for condition in conditions)
    tail = (
        " RETURNING " + ", ".join(quote(fields[name].column) for name in returning)
        if returning
        else ""
    )
    table, pk_column = quote(model._meta.db_table), quote(model._meta.pk.column)
    head = f"UPDATE {table} SET {set_sql} WHERE {pk_column}"
    if connection.vendor == "postgresql":
        batches = [pks]
    else:
        # What is left of the statement's parameters for the ids.
        limit = connection.features.max_query_params or POSTGRES_MAX_PARAMS
        size = max(1, limit - len(set_params) - len(where_params))
        batches = [pks[start : start + size] for start in range(0, len(pks), size)]
    changed, returned = 0, []
    with connection.cursor() as cursor:
        for batch in batches:
            if connection.vendor == "postgresql":
                sql, params = f"{head} = ANY(%s){where_sql}{tail}", [batch]
            else:
                sql = f"{head} IN ({', '.join(['%s'] * len(batch))}){where_sql}{tail}"
                params = batch
            cursor.execute(sql, [*set_params, *params, *where_params])
            if returning:
                returned.extend(tuple(row) for row in cursor.fetchall())
            else:
                changed += cursor.rowcount
    return returned if returning else changed
