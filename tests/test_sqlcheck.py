"""Computed columns: the allow-list, the rendering per engine and the order of computed columns."""

from __future__ import annotations

import pytest
import sqlglot

from tessera.engine.sqlrender import render
from tessera.sqlcheck import check_expression, order_computed
from tessera.errors import ConfigError

COLUMNS = {"first_name", "last_name", "birth_date", "email", "amount", "updated_at", "tessera_id", "age"}
WHERE = "datasets[0].computed[1] (age)"
DIALECTS = {"duckdb": "duckdb", "pyspark": "spark", "postgres": "postgres"}


def refused(sql: str) -> str:
    with pytest.raises(ConfigError) as exc:
        check_expression(sql, COLUMNS, where=WHERE)
    problems = exc.value.problems
    assert len(problems) == 1
    assert problems[0].startswith(f"{WHERE}: ")
    return problems[0]


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize("sql, named", [
    ("read_csv('/etc/passwd')", "function read_csv is not allowed in a computed column (file and network access)"),
    ("read_csv_auto('data.csv')", "function read_csv_auto"),
    ("read_parquet('https://example.com/x.parquet')", "function read_parquet"),
    ("read_json('x.json')", "function read_json"),
    ("read_text('x.txt')", "function read_text"),
    ("read_blob('x.bin')", "function read_blob"),
    ("parquet_scan('x.parquet')", "function parquet_scan"),
    ("sniff_csv('x.csv')", "function sniff_csv"),
    ("glob('*.csv')", "function glob is not allowed"),
    ("length(glob('*'))", "function glob is not allowed"),
    ("upper(read_text('x')[1])", "function read_text"),
])
def test_file_and_network_readers_are_refused(sql, named):
    message = refused(sql)
    assert named in message
    assert "file and network access" in message
    assert "allowed: scalar functions over this dataset's columns" in message


@pytest.mark.parametrize("sql, keyword", [
    ("COPY contacts TO 'out.csv'", "COPY"),
    ("ATTACH 'other.db' AS other", "ATTACH"),
    ("PRAGMA database_list", "PRAGMA"),
    ("SET threads = 1", "SET"),
    ("SELECT first_name FROM contacts", "SELECT"),
    ("DROP TABLE contacts", "DROP"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD"),
])
def test_statements_are_refused(sql, keyword):
    message = refused(sql)
    assert f"{keyword} is a statement, not an expression" in message


def test_several_statements_are_refused():
    assert "';' is not allowed" in refused("1; DROP TABLE x")
    assert "';' is not allowed" in refused("upper(first_name);")


def test_a_semicolon_inside_a_string_is_fine():
    check_expression("concat(first_name, ';', last_name)", COLUMNS, where=WHERE)


@pytest.mark.parametrize("sql", [
    "(SELECT 1)",
    "(SELECT max(amount) FROM orders)",
    "email IN (SELECT email FROM blocked)",
    "EXISTS (SELECT 1)",
    "first_name || (SELECT name FROM other LIMIT 1)",
])
def test_subqueries_are_refused(sql):
    assert "subquery" in refused(sql)


def test_a_join_through_a_subquery_is_refused_and_named():
    message = refused("(SELECT o.amount FROM orders o JOIN contacts c ON o.id = c.id)")
    assert "subquery (SELECT" in message
    assert "no SELECT, no other table" in message


def test_a_column_of_another_table_is_refused():
    message = refused("orders.amount * 2")
    assert "column orders.amount names a table" in message


@pytest.mark.parametrize("sql, named", [
    ("sum(amount)", "aggregate function sum"),
    ("count(*)", "aggregate function count"),
    ("avg(amount) + 1", "aggregate function avg"),
    ("max(amount)", "aggregate function max"),
])
def test_aggregates_are_refused(sql, named):
    message = refused(sql)
    assert named in message
    assert "row-level" in message


@pytest.mark.parametrize("sql", ["row_number() OVER ()", "sum(amount) OVER (PARTITION BY email)",
                                 "lag(amount) OVER (ORDER BY updated_at)", "row_number()"])
def test_window_functions_are_refused(sql):
    message = refused(sql)
    assert "window function" in message
    assert "row-level" in message


def test_unknown_column_names_it_and_the_close_ones():
    message = refused("concat(frist_name, ' ', last_name)")
    assert "unknown column 'frist_name'" in message
    assert "did you mean first_name" in message


def test_unknown_column_without_close_match_lists_the_columns():
    message = refused("zzz + 1")
    assert "unknown column 'zzz'" in message
    assert "columns: age, amount, birth_date" in message


def test_star_is_refused():
    assert "'*' is not allowed" in refused("*")


@pytest.mark.parametrize("sql", ["amount * ?", "amount * $1", "amount * :rate"])
def test_parameters_are_refused(sql):
    assert "parameter" in refused(sql)


@pytest.mark.parametrize("sql, named", [
    ("range(10)", "table function"),
    ("unnest([1, 2])", "table function"),
    ("generate_series(1, 3)", "table function"),
    ("getenv('HOME')", "(engine settings and environment)"),
    ("current_setting('threads')", "(engine settings and environment)"),
])
def test_table_functions_and_settings_are_refused(sql, named):
    assert named in refused(sql)


@pytest.mark.parametrize("sql, named", [
    ("my_udf(first_name)", "function my_udf is not supported"),
    ("levenshtein(first_name, last_name)", "function levenshtein is not supported"),
    ("random()", "function rand"),
    ("age(birth_date)", "age is supported as EXTRACT(YEAR FROM age(x))"),
    ("EXTRACT(DAY FROM age(birth_date))", "only the years of an age"),
    ("EXTRACT(DOW FROM birth_date)", "EXTRACT part"),
    ("date_diff('hour', updated_at, current_date)", "date_diff unit 'hour'"),
    ("regexp_replace(email, '@.*', '')", "'g'"),
    ("regexp_matches(email, first_name)", "the pattern must be a string literal"),
    ("TRY_CAST(amount AS INTEGER)", "TRY_CAST is not supported"),
    ("CAST(amount AS BLOB)", "a cast to BLOB is not supported"),
    ("strftime(birth_date, '%A')", "'%A' is not supported"),
    ("log(amount)", "log is not portable"),
    ("first_name = 'x' AS flag", "an alias"),
    ("[1, 2]", "function array is not supported"),
    ("list_transform([1], x -> x + 1)", "not supported"),
])
def test_unsupported_functions_and_forms_are_named(sql, named):
    assert named in refused(sql)


def test_unparseable_and_empty_expressions():
    assert "not valid SQL" in refused("amount +")
    assert "empty" in refused("   ")


# --------------------------------------------------------------------------- allowed

ALLOWED = [
    "concat(first_name, ' ', last_name)",
    "first_name || ' ' || last_name",
    "concat_ws(' ', First_Name, \"last_name\")",
    "CASE WHEN age < 30 THEN 'young' WHEN age IS NULL THEN 'unknown' ELSE 'other' END",
    "if(amount > 100, 'big', 'small')",
    "coalesce(email, 'none')",
    "nullif(trim(email), '')",
    "upper(substr(first_name, 1, 1)) || lower(substring(first_name, 2))",
    "length(replace(lower(trim(email)), '.', ''))",
    "split_part(email, '@', 2)",
    "regexp_extract(email, '@(.+)$', 1)",
    "regexp_replace(email, '\\d+', '#', 'g')",
    "regexp_matches(email, '^[a-z]+@')",
    "starts_with(email, 'a') OR ends_with(email, '.fr') OR contains(email, 'x')",
    "lpad(CAST(tessera_id AS VARCHAR), 10, '0')",
    "round(amount * 1.2, 2)",
    "floor(amount) + ceil(amount) + abs(amount) - sign(amount)",
    "least(amount, 100) / greatest(amount, 1)",
    "amount % 7",
    "CAST(amount AS INTEGER)",
    "amount::DECIMAL(10, 2)",
    "EXTRACT(YEAR FROM age(birth_date))",
    "date_part('year', age(birth_date))",
    "EXTRACT(YEAR FROM age(DATE '2024-01-01', birth_date))",
    "year(birth_date) * 100 + month(birth_date)",
    "date_diff('day', birth_date, current_date)",
    "datediff('month', birth_date, today())",
    "date_trunc('month', updated_at)",
    "strftime(birth_date, '%Y-%m')",
    "birth_date + INTERVAL 18 YEAR",
    "make_date(year(birth_date), 1, 1)",
    "last_day(birth_date)",
    "birth_date BETWEEN DATE '1980-01-01' AND DATE '1989-12-31'",
    "email LIKE '%@example.com' AND email NOT IN ('a@b.c')",
    "email IS DISTINCT FROM 'x'",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_expressions_parse_and_render_for_every_engine(sql):
    expr = check_expression(sql, COLUMNS, where=WHERE)
    for backend, dialect in DIALECTS.items():
        text = render(expr, backend)
        assert text
        sqlglot.parse_one(text, read=dialect)  # valid SQL of that dialect


def test_columns_are_quoted_with_the_dataset_spelling():
    expr = check_expression("concat(First_Name, ' ', \"last_name\")", COLUMNS, where=WHERE)
    assert render(expr, "duckdb") == "CONCAT(\"first_name\", ' ', \"last_name\")"
    assert render(expr, "pyspark") == "CONCAT(COALESCE(`first_name`, ''), ' ', COALESCE(`last_name`, ''))"
    assert render(expr, "postgres") == "CONCAT(\"first_name\", ' ', \"last_name\")"


def test_age_in_years_is_the_same_arithmetic_on_every_engine():
    expr = check_expression("EXTRACT(YEAR FROM age(birth_date))", COLUMNS, where=WHERE)
    texts = {backend: render(expr, backend) for backend in DIALECTS}
    assert "AGE(" not in " ".join(texts.values()).upper()
    assert "CURRENT_DATE" in texts["pyspark"]
    assert texts["duckdb"] == texts["postgres"]
    assert texts["pyspark"] == texts["duckdb"].replace('"', "`")


def test_regular_expressions_are_translated():
    expr = check_expression("regexp_replace(email, '(\\d)', '<\\1>', 'g')", COLUMNS, where=WHERE)
    assert render(expr, "duckdb") == "REGEXP_REPLACE(\"email\", '(\\d)', '<\\1>', 'g')"
    assert render(expr, "pyspark") == "REGEXP_REPLACE(`email`, '(\\\\d)', '<$1>')"
    assert render(expr, "postgres") == "REGEXP_REPLACE(\"email\", '([0-9])', '<\\1>', 'g')"


def test_division_by_zero_is_null_everywhere():
    expr = check_expression("amount / 0", COLUMNS, where=WHERE)
    for backend in DIALECTS:
        assert "NULLIF(0, 0)" in render(expr, backend)


# --------------------------------------------------------------------------- order


def test_order_puts_a_column_after_the_ones_it_uses():
    items = {
        "age_band": "CASE WHEN age < 30 THEN 'young' ELSE 'other' END",
        "label": "concat(full_name, ' (', age_band, ')')",
        "age": "EXTRACT(YEAR FROM age(birth_date))",
        "full_name": "concat(first_name, ' ', last_name)",
    }
    order = order_computed(items, {"first_name", "last_name", "birth_date"})
    assert order.index("age") < order.index("age_band") < order.index("label")
    assert order.index("full_name") < order.index("label")
    assert sorted(order) == sorted(items)


def test_a_cycle_is_refused_by_name():
    items = {"age": "age_band + 1", "age_band": "CASE WHEN age < 30 THEN 1 ELSE 2 END"}
    with pytest.raises(ConfigError, match="age -> age_band -> age"):
        order_computed(items, {"birth_date"})


def test_a_column_using_itself_is_a_cycle():
    with pytest.raises(ConfigError, match="total -> total"):
        order_computed({"total": "total + 1"}, {"amount"})


def test_a_longer_cycle_is_named_whole():
    items = {"a": "b + 1", "b": "c + 1", "c": "a + 1", "d": "1"}
    with pytest.raises(ConfigError, match="a -> b -> c -> a"):
        order_computed(items, set())
