"""The project's SQL (nowhere else writes any): queries on the hot paths, written from the models'
own metadata, and the PostgreSQL statements the ORM has no call for.

Building a queryset costs far more than running these indexed one-row statements (an ORM
`filter(...).exists()` spends about 0.4 ms in Python before the database sees it; the SQL below
about 0.05 ms in all), and a digest run makes several per message. Each function does what the
ORM call named in its docstring does, for plain field values (no expressions), and converts
values with the fields' own `get_db_prep_save`, so the two always store the same thing.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar, cast

from django.db import InterfaceError, OperationalError, connection
from django.db.models import Field, ManyToManyField, Model
from django.utils import timezone

Key = TypeVar("Key")  # update_each's row keys: the values of one field


def _column(model: type[Model], name: str) -> tuple[str, Field]:
    return _quoted_column(model, name, connection.vendor)


@lru_cache(maxsize=256)
def _quoted_column(model: type[Model], name: str, vendor: str) -> tuple[str, Field]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise ValueError(f"{model.__name__}.{name} has no column of its own")
    return connection.ops.quote_name(field.column), field


def _where(model: type[Model], conditions: Mapping[str, object]) -> tuple[str, list]:
    clauses, params = [], []
    for name, value in conditions.items():
        column, field = _column(model, name)
        clauses.append(f"{column} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return " AND ".join(clauses), params


def row_exists(model: type[Model], **conditions: object) -> bool:
    """`model.objects.filter(**conditions).exists()` for equality on plain fields."""
    where, params = _where(model, conditions)
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(model._meta.db_table)
        # S608: only quoted table and column names from the model's metadata are formatted in; values are parameters.
        cursor.execute(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", params)  # noqa: S608
        return cursor.fetchone() is not None


def ids_among(model: type[Model], ids: Sequence[int], **conditions: object) -> set[int]:
    """`set(model.objects.filter(pk__in=ids, **conditions).values_list("pk", flat=True))` for
    equality on plain fields."""
    if not ids:
        return set()
    where, params = _where(model, conditions)
    pk = connection.ops.quote_name(model._meta.pk.column)
    table = connection.ops.quote_name(model._meta.db_table)
    listed = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        # S608: only quoted table and column names from the model's metadata are formatted in; values are parameters.
        cursor.execute(f"SELECT {pk} FROM {table} WHERE {pk} IN ({listed}) AND {where}", [*ids, *params])  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


def update_rows(model: type[Model], changes: Mapping[str, object], **conditions: object) -> int:
    """`model.objects.filter(**conditions).update(**changes)` for plain values; returns the row count."""
    assignments, params = [], []
    for name, value in changes.items():
        column, field = _column(model, name)
        assignments.append(f"{column} = %s")
        params.append(field.get_db_prep_save(value, connection))
    where, where_params = _where(model, conditions)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        # S608: only quoted table and column names from the model's metadata are formatted in; values are parameters.
        cursor.execute(f"UPDATE {table} SET {', '.join(assignments)} WHERE {where}", params + where_params)  # noqa: S608
        return cursor.rowcount


def update_each(
    model: type[Model],
    names: Sequence[str],
    rows: Mapping[Key, Sequence[object]],
    *,
    key: str | None = None,
    only_unset: bool = False,
    same: Mapping[str, object] | None = None,
    where: Mapping[str, object] | None = None,
) -> int:
    """`bulk_update` of the fields `names` to per-row values, in one statement: `rows` maps a value
    of the `key` field (the primary key by default) to the values for the rows that have it.

    Django's bulk_update writes a CASE WHEN per field and row, which costs milliseconds to build for
    a chunk of a hundred; this joins the rows' values instead: one array per field on PostgreSQL
    (`unnest`, as `insert_rows` does), a VALUES list on SQLite (3.33 and newer). With `only_unset`,
    rows whose fields are already set (not NULL) are left alone. `same` sets fields to one value
    for every row (None included), and only rows that also have the `where` values change:
    `filter(**where)` then `update(**same)` with per-row values beside.
    A column whose values are all None would have no type on SQLite: give it in `same`.
    """
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(*_update_each_sql(model, names, rows, key, only_unset, same or {}, where or {}))
        return cursor.rowcount


def _update_each_sql(
    model: type[Model],
    names: Sequence[str],
    rows: Mapping[Key, Sequence[object]],
    key: str | None,
    only_unset: bool,
    same: Mapping[str, object],
    where: Mapping[str, object],
) -> tuple[str, list]:
    fields = [_column(model, name) for name in names]
    key_column, key_field = _column(model, key or model._meta.pk.name)
    table = connection.ops.quote_name(model._meta.db_table)
    # Both sources name their columns column1, column2... (SQLite's VALUES does so itself).
    assignments = [f"{column} = new.column{n}" for n, (column, _) in enumerate(fields, 2)]
    set_params, where_params = [], []
    for name, value in same.items():
        column, field = _column(model, name)
        assignments.append(f"{column} = %s")
        set_params.append(field.get_db_prep_save(value, connection))
    conditions = "".join(f" AND {table}.{column} IS NULL" for column, _ in fields) if only_unset else ""
    for name, value in where.items():
        column, field = _column(model, name)
        conditions += f" AND {table}.{column} = %s"
        where_params.append(field.get_db_prep_save(value, connection))
    every = [(key_column, key_field), *fields]
    if connection.vendor == "postgresql":
        # One array per column: a statement of a few parameters whose text is the same whatever
        # the number of rows, where a VALUES list costs psycopg more to build than the update.
        columns = zip(*((key_value, *values) for key_value, values in rows.items()), strict=True)
        arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for _, field in every)
        names_sql = ", ".join(f"column{n}" for n in range(1, len(every) + 1))
        source = f"unnest({arrays}) AS new({names_sql})"
        params = [
            _array_literal(field, _stored_column(field, column))
            for (_, field), column in zip(every, columns, strict=True)
        ]
    else:
        params = []
        for key_value, values in rows.items():
            params.append(key_field.get_db_prep_save(key_value, connection))
            params.extend(
                field.get_db_prep_save(value, connection) for (_, field), value in zip(fields, values, strict=True)
            )
        row_sql = "(" + ", ".join(["%s"] * len(every)) + ")"
        source = f"(VALUES {', '.join([row_sql] * len(rows))}) AS new"
    sql = (
        # S608: only the model's quoted table and column names are formatted in; values are parameters.
        f"UPDATE {table} SET {', '.join(assignments)} FROM {source} "  # noqa: S608
        f"WHERE {table}.{key_column} = new.column1{conditions}"
    )
    return sql, set_params + params + where_params


def insert_rows(
    model: type[Model],
    rows: Sequence[Mapping[str, object]],
    *,
    ignore_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> list[tuple]:
    """`model.objects.bulk_create([model(**row) for row in rows], ignore_conflicts=...)` for plain
    values, without building an instance per row (bulk_create spends about 0.1 ms on each).

    Every row gives the same fields; the others get their default, or the time of the call for
    `auto_now` and `auto_now_add` fields, as bulk_create gives them. Returns the fields
    `returning` of the rows inserted (with `ignore_conflicts`, only those this call inserted), as
    stored.
    """
    if not rows:
        return []
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    return insert_columns(model, columns, ignore_conflicts=ignore_conflicts, returning=returning)


# Fields whose stored values (get_db_prep_save) are only int, float or None, or only str or None: their
# arrays are sent as text literals, which costs a fifth of psycopg adapting the list item by item.
_NUMBER_TYPES = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "FloatField",
    "IntegerField",
    "PositiveBigIntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SmallAutoField",
    "SmallIntegerField",
}
_TEXT_TYPES = {"CharField", "TextField"}
_INTEGER_TYPES = _NUMBER_TYPES - {"FloatField"}


def _stored_column(field: Field, values: Iterable[object]) -> list:
    """The values as the field stores them (`get_db_prep_save`), each distinct value converted once.

    An int given for an integer field is kept as it is: get_db_prep_save gives back the same number
    (on PostgreSQL wrapped in psycopg's Int2/Int4/Int8, for binding; the arrays here are written as
    text literals, the same digits either way). A chunk's claim and outcomes write hundreds of ids
    and counts, and the fields' conversion cost a sending worker more than the rest of their statements.
    """
    integers = getattr(field, "target_field", field).get_internal_type() in _INTEGER_TYPES
    known: dict[object, object] = {}
    stored: list[object] = []
    for value in values:
        if integers and type(value) is int:
            stored.append(value)
            continue
        try:
            found = known[value]
        except KeyError:
            found = known[value] = field.get_db_prep_save(value, connection)
        except TypeError:  # not hashable
            found = field.get_db_prep_save(value, connection)
        stored.append(found)
    return stored


def _array_literal(field: Field, values: list) -> object:
    """`values` as PostgreSQL reads an array of the field's type: a text literal when the field
    stores numbers (a float's repr reads back as the same double) or text, else the list itself."""
    kind = getattr(field, "target_field", field).get_internal_type()
    if kind in _NUMBER_TYPES:
        return numbers_literal(values)
    if kind in _TEXT_TYPES:
        return texts_literal(values)
    return values


def numbers_literal(values: Sequence[int | float | None]) -> str:
    """An array of numbers as PostgreSQL reads its text (a float's repr reads back as the same double)."""
    items = (
        [str(value) for value in values] if None not in values else ["NULL" if v is None else str(v) for v in values]
    )
    return "{" + ",".join(items) + "}"


def texts_literal(values: Sequence[str | None]) -> str:
    """An array of strings as PostgreSQL reads its text: each quoted, its quotes and backslashes escaped."""
    items = ["NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(items) + "}"


def insert_columns(
    model: type[Model],
    columns: Mapping[str, Sequence[object]],
    *,
    ignore_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> list[tuple]:
    """`insert_rows` given column-wise: each field's values, in row order (all the same length).

    Callers that hold their values by column (a match run's candidates) skip building a mapping
    per row.
    """
    given = list(columns)
    count = len(columns[given[0]]) if given else 0
    if not count:
        return []
    fields = {name: _column(model, name) for name in given}
    now = timezone.now()
    constant = {}
    for field in model._meta.concrete_fields:
        if not field.primary_key and field.name not in given and field.attname not in given:
            value = (
                now
                if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
                else field.get_default()
            )
            constant[field.column] = (field, field.get_db_prep_save(value, connection))

    def prepared(name: str) -> list:
        """The column's values as the field stores them; most repeat a few slots, periods and times."""
        return _stored_column(fields[name][1], columns[name])

    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join([column for column, _ in fields.values()] + [connection.ops.quote_name(c) for c in constant])
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if returning:
        conflict += " RETURNING " + ", ".join(_column(model, name)[0] for name in returning)
    inserted: list[tuple] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array per column: a statement of a few parameters, where a VALUES list of
            # thousands costs psycopg more to parse than PostgreSQL takes to insert them.
            arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for _, field in fields.values())
            scalars = "".join(f", %s::{field.db_type(connection)}" for field, _ in constant.values())
            params = [value for _, value in constant.values()]
            for name in given:
                params.append(_array_literal(fields[name][1], prepared(name)))
            # S608: only quoted names and types from the model's metadata are formatted in; values are parameters.
            sql = f"INSERT INTO {table} ({names}) SELECT *{scalars} FROM unnest({arrays}){conflict}"  # noqa: S608
            cursor.execute(sql, params)
            return cursor.fetchall() if returning else []
        tail = [value for _, value in constant.values()]
        width = len(given) + len(tail)
        per_batch = max(1, (connection.features.max_query_params or 999) // width)
        values_by_row = list(zip(*(prepared(name) for name in given), strict=True))
        for start in range(0, count, per_batch):
            batch = values_by_row[start : start + per_batch]
            params = []
            for row in batch:
                params.extend(row)
                params.extend(tail)
            values = ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * len(batch))
            # S608: only the model's quoted table and column names are formatted in; values are parameters.
            cursor.execute(f"INSERT INTO {table} ({names}) VALUES {values}{conflict}", params)  # noqa: S608
            if returning:
                inserted += cursor.fetchall()
    return inserted


def insert_for_each(
    model: type[Model],
    key: str,
    values: Mapping[str, object],
    source: type[Model],
    matching: Mapping[str, Sequence[object]],
) -> None:
    """`model.objects.bulk_create([model(key=row, **values) for row in rows], ignore_conflicts=True)`,
    where `rows` are the `source` rows whose field is among the given values for any field of
    `matching` (`Q(a__in=...) | Q(b__in=...)`), in one INSERT ... SELECT that reads no row.

    The ORM has no INSERT ... SELECT. ON CONFLICT DO NOTHING is the same on PostgreSQL and
    SQLite (3.24+).
    """
    where: list[str] = []
    params: list[object] = []
    for name, wanted in matching.items():
        if wanted:
            column, field = _column(source, name)
            where.append(f"{column} IN ({', '.join(['%s'] * len(wanted))})")
            params.extend(field.get_db_prep_save(value, connection) for value in wanted)
    if not where:
        return
    columns, constants = [_column(model, key)[0]], []
    for name, value in values.items():
        column, field = _column(model, name)
        columns.append(column)
        constants.append(field.get_db_prep_save(value, connection))
    table, source_table = (connection.ops.quote_name(m._meta.db_table) for m in (model, source))
    source_key = _column(source, source._meta.pk.name)[0]
    sql = (
        # S608: only quoted table and column names from the models' metadata are formatted in; values are parameters.
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {source_key}{', %s' * len(constants)} "  # noqa: S608
        f"FROM {source_table} WHERE {' OR '.join(where)} ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, constants + params)


def insert_or_add(model: type[Model], key: Mapping[str, object], counts: Mapping[str, int]) -> None:
    """Add `counts` to the row with `key` (its fields unique together), creating it with `counts`
    when there is none: one statement, however many writers add to the same row at once."""
    names = [*key, *counts]
    params = [_column(model, name)[1].get_db_prep_save(value, connection) for name, value in {**key, **counts}.items()]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [_column(model, name)[0] for name in names]
    added = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in columns[len(key) :])
    with connection.cursor() as cursor:
        sql = (
            # S608: only the model's quoted table and column names are formatted in; values are parameters.
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(names))}) "  # noqa: S608
            f"ON CONFLICT ({', '.join(columns[: len(key)])}) DO UPDATE SET {added}"
        )
        cursor.execute(sql, params)


@contextmanager
def asynchronous_commits() -> Iterator[None]:
    """PostgreSQL's `SET synchronous_commit TO OFF` on this connection until the block ends: its
    commits return before the disk flush. RESET afterwards, unless the connection is gone."""
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except (OperationalError, InterfaceError):
            pass  # a new connection starts with the server's default anyway


def refresh_statistics(model: type[Model]) -> None:
    """ANALYZE the model's table, after a bulk change that leaves the planner's statistics stale.

    A match run adds tens of candidates per subscriber; until the statistics know it (autovacuum
    may be minutes away, or off), PostgreSQL estimates thousands of rows per delivery and scans
    the whole table on every chunk of a send. PostgreSQL only: without statistics SQLite assumes
    an index is selective, which suits the send's lookups of a subscriber's candidates by id.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def rows_unless_held(
    model: type[Model], ids: Sequence[int], names: Sequence[str], held: Mapping[int, str]
) -> list[tuple[int, str, tuple | None]]:
    """PostgreSQL: the rows among `ids` as (id, row version, values of `names`), the values None
    for a row whose version is the one `held` gives for it (id -> version). One statement.

    The version is where and by which transaction the row was written (`xmin` and `ctid`): every
    UPDATE writes a new row version at a new place, and a place is only reused once the version
    there is dead to every transaction, its writer's included; so a changed row never keeps its
    version (not even one changed twice by one transaction) and its values come back. A caller
    keeping rows between calls thus reads only the rows that are new to it or changed.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    fields = [_column(model, name) for name in names]
    values = ", ".join(f"CASE WHEN held.id IS NULL THEN t.{column} END" for column, _ in fields)
    held_ids = [key for key in ids if key in held]
    row_version = "t.xmin::text || '/' || t.ctid::text"
    sql = (
        # S608: only quoted table and column names from the model's metadata are formatted in; values are parameters.
        f"SELECT t.{pk}, {row_version}, held.id IS NOT NULL, {values} FROM {table} AS t "  # noqa: S608
        "LEFT JOIN unnest(%s::bigint[], %s::text[]) AS held(id, version) "
        f"ON held.id = t.{pk} AND held.version = {row_version} WHERE t.{pk} = ANY(%s::bigint[])"
    )
    # What Field.get_db_converters gives a plain field (JSONField parses its text).
    converters = [getattr(field, "from_db_value", None) for _, field in fields]
    found: list[tuple[int, str, tuple | None]] = []
    with connection.cursor() as cursor:
        # Text literals: psycopg adapts a list item by item, in Python.
        cursor.execute(
            sql, [numbers_literal(held_ids), texts_literal([held[key] for key in held_ids]), numbers_literal(ids)]
        )
        for key, version, is_held, *row in cursor.fetchall():
            if is_held:
                found.append((key, version, None))
                continue
            for index, (value, convert) in enumerate(zip(row, converters, strict=True)):
                if convert is not None:
                    row[index] = convert(value, None, connection)
            found.append((key, version, tuple(row)))
    return found


def related_values(field: ManyToManyField, ids: Sequence[int], name: str) -> dict[int, list]:
    """`{row.pk: [related.<name> for related in getattr(row, field.name).all()]}` for the rows of
    `ids` of the many-to-many `field`'s model, in the related model's ordering (plain field names),
    as `prefetch_related` gives them; one statement. A row with no related rows has no key.

    A chunk's prefetch of its subscribers' topics built a model, a manager and a queryset per row:
    most of the cost of loading the subscribers, for the topic names a digest reads.
    """
    if not ids:
        return {}
    through, related = cast(type[Model], field.remote_field.through), cast(type[Model], field.related_model)
    source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
    own, other = _column(through, source)[0], _column(through, target)[0]
    value = _column(related, name)[0]
    order = [
        f"r.{_column(related, part.lstrip('-'))[0]}{' DESC' if part.startswith('-') else ''}"
        for part in related._meta.ordering or ()
    ]
    tables = [connection.ops.quote_name(model._meta.db_table) for model in (through, related)]
    related_pk = connection.ops.quote_name(related._meta.pk.column)
    listed = ", ".join(["%s"] * len(ids))
    sql = (
        # S608: only quoted table and column names from the models' metadata are formatted in; values are parameters.
        f"SELECT t.{own}, r.{value} FROM {tables[0]} AS t JOIN {tables[1]} AS r ON r.{related_pk} = t.{other} "  # noqa: S608
        f"WHERE t.{own} IN ({listed}) ORDER BY {', '.join([*order, f'r.{related_pk}'])}"
    )
    found: dict[int, list] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, list(ids))
        for key, item in cursor.fetchall():
            found.setdefault(key, []).append(item)
    return found


def rows_above_highest(
    model: type[Model],
    names: Sequence[str],
    key: str,
    keys: Sequence[object],
    bounds: type[Model],
    bound: str,
) -> list[tuple]:
    """For each of `keys`: the highest `bound` among the `bounds` rows with that `key` (0 when
    none), and the `model` rows with that `key` whose primary key is above it, as (key, highest,
    pk, *names); a key with no such row gives one row of (key, highest, None, ...). One statement.

    The ORM would either join the rows in Python or ask the correlated MAX once per row of the
    key, old rows included; here it runs once per key, and the rows come from an index on
    (key, pk).
    """
    if not keys:
        return []
    key_column, key_field = _column(model, key)
    bounds_key, _ = _column(bounds, key)
    bound_column, _ = _column(bounds, bound)
    table, bounds_table = (connection.ops.quote_name(m._meta.db_table) for m in (model, bounds))
    pk = connection.ops.quote_name(model._meta.pk.column)
    values = ", ".join(f"r.{_column(model, name)[0]}" for name in names)
    prepared = [key_field.get_db_prep_save(value, connection) for value in keys]
    if connection.vendor == "postgresql":
        source, params = f"SELECT unnest(%s::{key_field.db_type(connection)}[])", [prepared]
        # Else PostgreSQL inlines `f` and asks the MAX again for every row it returns.
        materialized = "MATERIALIZED "
    else:
        source, params = "VALUES " + ", ".join(["(%s)"] * len(prepared)), prepared
        materialized = ""  # SQLite before 3.35 has no such word
    sql = (
        # S608: only quoted table and column names from the models' metadata are formatted in; values are parameters.
        f"WITH k(v) AS ({source}), f AS {materialized}(SELECT k.v, COALESCE((SELECT MAX(b.{bound_column}) "  # noqa: S608
        f"FROM {bounds_table} AS b WHERE b.{bounds_key} = k.v), 0) AS highest FROM k) "
        f"SELECT f.v, f.highest, r.{pk}, {values} FROM f LEFT JOIN {table} AS r "
        f"ON r.{key_column} = f.v AND r.{pk} > f.highest"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def lock_keys(space: int, keys: Sequence[int]) -> None:
    """PostgreSQL: take the transaction-level advisory locks (`space`, key) for each of `keys`, in
    ascending order (two transactions locking overlapping sets cannot deadlock), waiting for
    whoever holds one; released at commit or rollback. One statement. Nothing on SQLite, where a
    writing transaction holds the database's one write lock from its start (IMMEDIATE).

    Each lock takes a slot of the server's shared lock table (max_locks_per_transaction times
    max_connections in all) until the transaction ends.
    """
    if connection.vendor != "postgresql" or not keys:
        return
    with connection.cursor() as cursor:
        # OFFSET 0 keeps the sort below the function calls: the locks are taken in key order.
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, k)) FROM "
            "(SELECT DISTINCT k FROM unnest(%s::integer[]) AS u(k) ORDER BY k OFFSET 0) AS sorted",
            [space, sorted(set(keys))],
        )


def lock_for_key_share(model: type[Model], ids: Iterable[int]) -> set[int]:
    """`set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))`: the rows still there.
    On PostgreSQL it also locks them FOR KEY SHARE until the transaction ends, in primary key order:
    the lock a foreign key's check takes of the row it points to, taken before writing the rows that
    will point to it. Nobody can delete a row so locked (a deletion waits for the commit), while its
    other updates go ahead; `select_for_update` has no call for this strength (FOR UPDATE and FOR NO
    KEY UPDATE would hold those updates up too). One statement.
    """
    keys = sorted(set(ids))
    if not keys:
        return set()
    rows = model._default_manager.filter(pk__in=keys).order_by("pk").values_list("pk", flat=True)
    if connection.vendor != "postgresql":
        return set(rows)
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        # The ORM's own SELECT; ORDER BY comes before the locking, so the rows are locked in order.
        cursor.execute(f"{sql} FOR KEY SHARE", params)
        return {row[0] for row in cursor.fetchall()}
