"""Items of a column, one row each: an order's ``line_items`` JSON array, or packed text.

Every engine calls this on the parent's raw batch (text columns) in an embedded DuckDB, like
:mod:`tessera.engine.filereader` parses files, so a batch gives the same items and rejects on every
engine. The SQL is set-based: one ``unnest`` over the positions of each row's items.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from tessera.engine.filereader import LINE, infer_types, qi, ql

REJECT_SCHEMA = pa.schema([("line", pa.int64()), ("column_name", pa.string()), ("reason", pa.string()),
                           ("raw", pa.string())])


def _json_path(field: str) -> str:
    return "$" + "".join(f'."{p}"' for p in field.split("."))


def explode_items(data: pa.Table, *, keys: list[str], column: str, fields: list[str], separator: str | None,
                  field_separator: str = ":") -> tuple[pa.Table, pa.Table, dict[str, str]]:
    """(items, rejects, inferred types) of ``data``'s ``column``.

    Items have the ``keys`` columns, ``position`` (1-based), one text column per field and the
    parent's ``_tessera_line``. A value that is not a JSON array (or an item that is not an object)
    is rejected with its line; an empty value or ``[]`` has no item. With ``separator``, the
    value is split on it, and each item on ``field_separator`` into the fields in order (missing
    fields are empty; an item with more fields than declared is rejected).
    """
    con = duckdb.connect()
    try:
        con.register("parent", data)
        value = f"NULLIF(trim({qi(column)}), '')"
        key_cols = ", ".join(qi(k) for k in keys)
        if separator is None:
            con.execute(f"""
                CREATE TEMP TABLE checked AS
                SELECT {key_cols}, {qi(LINE)}, {value} AS v,
                       CASE WHEN {value} IS NULL THEN 'empty'
                            WHEN NOT json_valid({value}) THEN 'not JSON'
                            WHEN json_type({value}::JSON) <> 'ARRAY' THEN 'not an array' END AS problem
                FROM parent""")
            con.execute("""
                CREATE TEMP TABLE positions AS
                SELECT * EXCLUDE (n), unnest(range(n)) AS i FROM (
                    SELECT *, CAST(json_array_length(v::JSON) AS BIGINT) AS n FROM checked WHERE problem IS NULL)""")
            item = "json_extract(v::JSON, '$[' || i || ']')"
            cols = ", ".join(f"json_extract_string({item}, {ql(_json_path(f))}) AS {qi(f)}" for f in fields)
            con.execute(f"""
                CREATE TEMP TABLE items AS
                SELECT {key_cols}, CAST(i + 1 AS BIGINT) AS position, {cols}, {qi(LINE)},
                       json_type({item}) = 'OBJECT' AS ok, {item}::VARCHAR AS raw
                FROM positions""")
            rejects = con.execute(f"""
                SELECT {qi(LINE)}::BIGINT AS line, {ql(column)} AS column_name,
                       'column ' || {ql(column)} || ' is ' || problem || ': it must hold a JSON array of objects '
                       || '([{{"sku": "A1", "quantity": 2}}, ...])' AS reason, left(v, 2000) AS raw
                FROM checked WHERE problem IS NOT NULL AND problem <> 'empty'
                UNION ALL
                SELECT {qi(LINE)}::BIGINT, {ql(column)},
                       'item ' || position || ' of column ' || {ql(column)} || ' is not a JSON object', left(raw, 2000)
                FROM items WHERE NOT ok
                ORDER BY 1""").fetch_arrow_table()
        else:
            sep, fsep = ql(separator), ql(field_separator)
            con.execute(f"""
                CREATE TEMP TABLE split AS
                SELECT {key_cols}, {qi(LINE)}, string_split({value}, {sep}) AS parts FROM parent
                WHERE {value} IS NOT NULL""")
            con.execute(f"""
                CREATE TEMP TABLE positions AS
                SELECT {key_cols}, {qi(LINE)}, i, string_split(trim(parts[i + 1]), {fsep}) AS f, trim(parts[i + 1]) AS raw
                FROM (SELECT *, unnest(range(CAST(len(parts) AS BIGINT))) AS i FROM split)
                WHERE trim(parts[i + 1]) <> ''""")
            cols = ", ".join(f"NULLIF(trim(f[{n + 1}]), '') AS {qi(name)}" for n, name in enumerate(fields))
            con.execute(f"""
                CREATE TEMP TABLE items AS
                SELECT {key_cols}, CAST(i + 1 AS BIGINT) AS position, {cols}, {qi(LINE)},
                       len(f) <= {len(fields)} AS ok, raw
                FROM positions""")
            rejects = con.execute(f"""
                SELECT {qi(LINE)}::BIGINT AS line, {ql(column)} AS column_name,
                       'item ' || position || ' of column ' || {ql(column)} || ' has ' || (len(string_split(raw, {fsep})))
                       || ' fields, more than the {len(fields)} declared ({", ".join(fields)})' AS reason, raw
                FROM items WHERE NOT ok ORDER BY 1""").fetch_arrow_table()
        names = [*keys, "position", *fields]
        items = con.execute(f"SELECT {', '.join(qi(c) for c in names)}, {qi(LINE)} FROM items WHERE ok "
                            f"ORDER BY {qi(LINE)}, position").fetch_arrow_table()
        con.execute("CREATE OR REPLACE TEMP TABLE typed AS SELECT * FROM items WHERE ok")
        types = infer_types(con, "typed", list(fields))
        types.update({k: "string" for k in keys})
        types["position"] = "integer"
        return items, rejects.cast(REJECT_SCHEMA), types
    finally:
        con.close()
