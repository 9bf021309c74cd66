"""The SQL statement suite's cases: supported statements with their flag spelling, refusals.

A supported case is ``(statement, flags)``: the flag query that must give the same
plan (``aggs``, ``where``, ``group_by``). A refused case is ``(statement, marker,
reason)``: the refusal must point at the first character of ``marker`` in the
statement (its last occurrence when written ``…marker``) and say ``reason``.
"""

from __future__ import annotations

from typing import Any

Flags = dict[str, Any]

SUPPORTED: list[tuple[str, Flags]] = [
    ("SELECT COUNT(*) FROM loans", {"aggs": ["count"]}),
    ("select count(*) from loans", {"aggs": ["count"]}),
    ("SELECT COUNT(exposure) FROM loans", {"aggs": ["count"]}),
    ("SELECT SUM(exposure) FROM loans", {"aggs": ["sum:exposure"]}),
    ("SELECT AVG(exposure) FROM loans", {"aggs": ["mean:exposure"]}),
    ("SELECT VAR_SAMP(exposure) FROM loans", {"aggs": ["var:exposure"]}),
    ("SELECT VARIANCE(lgd) FROM loans", {"aggs": ["var:lgd"]}),
    ("SELECT STDDEV_SAMP(exposure) FROM loans", {"aggs": ["stddev:exposure"]}),
    ("SELECT STDDEV(days_past_due) FROM loans", {"aggs": ["stddev:days_past_due"]}),
    ("SELECT MIN(exposure), MAX(exposure) FROM loans", {"aggs": ["min:exposure", "max:exposure"]}),
    (
        "SELECT COUNT(*), AVG(exposure), STDDEV_SAMP(exposure) FROM loans",
        {"aggs": ["count", "mean:exposure", "stddev:exposure"]},
    ),
    (
        "SELECT sector, COUNT(*) FROM loans GROUP BY sector",
        {"aggs": ["count"], "group_by": "sector"},
    ),
    (
        "SELECT COUNT(*) FROM loans GROUP BY sector",
        {"aggs": ["count"], "group_by": "sector"},
    ),
    (
        'SELECT "sector", COUNT(*) FROM "loans" GROUP BY "sector"',
        {"aggs": ["count"], "group_by": "sector"},
    ),
    (
        "SELECT loans.sector, AVG(loans.exposure) FROM loans GROUP BY loans.sector",
        {"aggs": ["mean:exposure"], "group_by": "sector"},
    ),
    (
        "SELECT l.sector, SUM(l.exposure) FROM loans AS l GROUP BY l.sector",
        {"aggs": ["sum:exposure"], "group_by": "sector"},
    ),
    (
        "SELECT sector, rating, COUNT(*), AVG(exposure), STDDEV_SAMP(exposure) FROM loans "
        "WHERE exposure > 100000 AND rating IN ('BB','B') GROUP BY sector, rating",
        {
            "aggs": ["count", "mean:exposure", "stddev:exposure"],
            "where": "exposure > 100000 AND rating IN ('BB','B')",
            "group_by": "sector,rating",
        },
    ),
    (
        "SELECT rating, sector, COUNT(*) FROM loans GROUP BY rating, sector",
        {"aggs": ["count"], "group_by": ["rating", "sector"]},
    ),
    (
        "SELECT region, rating, sector, SUM(exposure) FROM loans GROUP BY region, rating, sector",
        {"aggs": ["sum:exposure"], "group_by": "region,rating,sector"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE exposure >= 5000",
        {"aggs": ["count"], "where": "exposure >= 5000"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE 5000 < exposure",
        {"aggs": ["count"], "where": "exposure > 5000"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE exposure <> 0",
        {"aggs": ["count"], "where": "exposure != 0"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE rating != 'AAA'",
        {"aggs": ["count"], "where": "rating != 'AAA'"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE rating NOT IN ('CCC', 'B')",
        {"aggs": ["count"], "where": "rating NOT IN ('CCC', 'B')"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE NOT rating IN ('CCC', 'B')",
        {"aggs": ["count"], "where": "rating NOT IN ('CCC', 'B')"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE exposure BETWEEN 1000 AND 50000",
        {"aggs": ["count"], "where": "exposure >= 1000 AND exposure <= 50000"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE exposure NOT BETWEEN 1000 AND 50000",
        {"aggs": ["count"], "where": "exposure < 1000 OR exposure > 50000"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE region = 'north' AND exposure BETWEEN 1 AND 2",
        {"aggs": ["count"], "where": "region = 'north' AND exposure >= 1 AND exposure <= 2"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE NOT (exposure > 1000 AND lgd < 0.5)",
        {"aggs": ["count"], "where": "exposure <= 1000 OR lgd >= 0.5"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE NOT (rating = 'A' OR region = 'east')",
        {"aggs": ["count"], "where": "rating != 'A' AND region != 'east'"},
    ),
    (
        "SELECT sector, COUNT(*) FROM loans WHERE (sector IN ('energy', 'retail') OR lgd <= 0.25) "
        "AND defaulted = 0 GROUP BY sector",
        {
            "aggs": ["count"],
            "where": "(sector IN ('energy', 'retail') OR lgd <= 0.25) AND defaulted = 0",
            "group_by": "sector",
        },
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE exposure > 1000.505 OR rating = 'AA' AND region = 'west'",
        {"aggs": ["count"], "where": "exposure > 1000.505 OR rating = 'AA' AND region = 'west'"},
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE days_past_due > 0",
        {"aggs": ["count"], "where": "days_past_due > 0"},
    ),
    (
        "SELECT sector, COUNT(*) AS n, AVG(exposure) AS mean_exposure FROM loans GROUP BY sector "
        "ORDER BY n DESC, sector",  # ties in n have no order of their own, in SQL or here
        {"aggs": ["count", "mean:exposure"], "group_by": "sector"},
    ),
    (
        "SELECT sector, AVG(exposure) FROM loans GROUP BY sector ORDER BY AVG(exposure) DESC "
        "LIMIT 3",
        {"aggs": ["mean:exposure"], "group_by": "sector"},
    ),
    (
        "SELECT sector, COUNT(*) FROM loans GROUP BY sector ORDER BY sector DESC",
        {"aggs": ["count"], "group_by": "sector"},
    ),
    (
        "SELECT sector, region, SUM(exposure) AS total FROM loans GROUP BY sector, region "
        "ORDER BY 3 DESC, sector LIMIT 5",
        {"aggs": ["sum:exposure"], "group_by": "sector,region"},
    ),
    (
        "SELECT region AS r, COUNT(*) c FROM loans GROUP BY region ORDER BY c DESC, r",
        {"aggs": ["count"], "group_by": "region"},
    ),
    (
        "SELECT sector, COUNT(*) FROM loans GROUP BY sector;",
        {"aggs": ["count"], "group_by": "sector"},
    ),
    (
        "SELECT sector,\n       COUNT(*)\n  FROM loans\n WHERE lgd > 0.1\n GROUP BY sector",
        {"aggs": ["count"], "where": "lgd > 0.1", "group_by": "sector"},
    ),
]

QUANTILES: list[tuple[str, Flags]] = [
    (
        "SELECT PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY exposure) FROM loans",
        {"column": "exposure", "levels": ["0.5"]},
    ),
    (
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY exposure), "
        "percentile_disc(0.99) WITHIN GROUP (ORDER BY exposure) FROM loans WHERE sector = 'energy'",
        {"column": "exposure", "levels": ["0.5", "0.99"], "where": "sector = 'energy'"},
    ),
    (
        "SELECT QUANTILE_DISC(lgd, 0.9) FROM loans",
        {"column": "lgd", "levels": ["0.9"]},
    ),
    ("SELECT quantile(lgd, 0.25) FROM `loans`", {"column": "lgd", "levels": ["0.25"]}),
    (
        "SELECT MEDIAN(exposure) FROM loans WHERE rating IN ('A', 'BB')",
        {
            "column": "exposure",
            "levels": ["0.5"],
            "where": "rating IN ('A', 'BB')",
            "interpolation": "linear",
        },
    ),
    (
        "SELECT PERCENTILE_CONT(0.1) WITHIN GROUP (ORDER BY lgd), "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY loans.lgd) FROM loans",
        {"column": "lgd", "levels": ["0.1", "0.9"], "interpolation": "linear"},
    ),
    (
        "SELECT QUANTILE_CONT(`exposure`, 0.75) FROM loans",
        {"column": "exposure", "levels": ["0.75"], "interpolation": "linear"},
    ),
]

REFUSED: list[tuple[str, str, str]] = [
    ("SELECT * FROM loans", "*", "SELECT * would release individual rows"),
    ("SELECT exposure FROM loans", "exposure", "would release individual rows"),
    ("SELECT sector, COUNT(*) FROM loans", "sector", "outside GROUP BY"),
    (
        "SELECT COUNT(*) FROM loans a JOIN loans b ON a.rating = b.rating",
        "loans b",
        "joins across institutions are not supported: every node holds rows of the same dataset",
    ),
    ("SELECT COUNT(*) FROM (SELECT * FROM loans) t", "* FROM loans)", "subqueries are not"),
    (
        "SELECT COUNT(*) FROM loans WHERE rating IN (SELECT rating FROM loans)",
        "rating FROM loans)",
        "subqueries are not supported",
    ),
    (
        "SELECT sector, COUNT(*) OVER (PARTITION BY sector) FROM loans",
        "COUNT(*) OVER",
        "window functions are not supported",
    ),
    ("SELECT SUM(balance) FROM loans", "balance", "unknown column 'balance'"),
    ("SELECT COUNT(*) FROM deposits_x", "deposits_x", "unknown dataset 'deposits_x'"),
    ("SELECT COUNT(*) FROM loans WHERE colour = 'red'", "colour", "unknown column 'colour'"),
    ("SELECT COUNT(*) FROM loans GROUP BY exposure", "exposure", "is numeric"),
    ("SELECT AVG(sector) FROM loans", "sector", "is categorical"),
    ("SELECT SUM(counterparty_lei) FROM loans", "counterparty_lei", "is an entity key"),
    ("SELECT SUM(exposure * 2) FROM loans", "exposure * 2", "not an expression"),
    ("SELECT MEDIAN(sector) FROM loans", "sector", "median needs a numeric column"),
    (
        "SELECT PERCENTILE_CONT(exposure, 0.5) FROM loans",
        "PERCENTILE_CONT",
        "write PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)",
    ),
    (
        "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY exposure DESC) FROM loans",
        "PERCENTILE_CONT",
        "orders by one column, ascending",
    ),
    (
        "SELECT MEDIAN(exposure), PERCENTILE_DISC(0.9) WITHIN GROUP (ORDER BY exposure) FROM loans",
        "PERCENTILE_DISC",
        "either interpolated percentiles (PERCENTILE_CONT, MEDIAN) or discrete ones",
    ),
    ("SELECT VAR_POP(exposure) FROM loans", "VAR_POP", "population statistic"),
    ("SELECT STDDEV_POP(exposure) FROM loans", "STDDEV_POP", "population statistic"),
    ("SELECT STD(exposure) FROM loans", "STD", "population statistic"),
    ("SELECT COUNT(DISTINCT sector) FROM loans", "COUNT", "COUNT(DISTINCT"),
    ("SELECT DISTINCT sector FROM loans", "sector", "SELECT DISTINCT"),
    (
        "SELECT sector, COUNT(*) FROM loans GROUP BY sector HAVING COUNT(*) > 10",
        "COUNT(*) > 10",
        "HAVING is not supported",
    ),
    ("SELECT COUNT(*) FROM loans UNION SELECT COUNT(*) FROM loans", "COUNT", "UNION"),
    ("WITH t AS (SELECT 1) SELECT COUNT(*) FROM t", "t AS", "WITH (common table expressions)"),
    ("DELETE FROM loans", "loans", "only SELECT statements"),
    ("SELECT COUNT(*) FROM loans; SELECT SUM(lgd) FROM loans", "SUM", "one statement at a time"),
    ("SELECT SUM(exposure) FROM", "FROM", "cannot read the statement near 'FROM'"),
    ("SELECT COUNT(*) FROM loans WHERE", "WHERE", "the statement is incomplete here"),
    ("SELECT COUNT(* FROM loans", "FROM", "cannot read the statement"),
    ("SELECT FOO(exposure) FROM loans", "FOO", "unknown function FOO"),
    ("SELECT COUNT(*) FROM loans WHERE exposure IS NULL", "exposure", "IS NULL never holds"),
    ("SELECT COUNT(*) FROM loans WHERE exposure > lgd", "lgd", "a number or a 'text'"),
    ("SELECT COUNT(*) FROM loans WHERE rating > 'A'", "rating >", "use =, != or IN"),
    (
        "SELECT COUNT(*) FROM loans WHERE lgd < 1 AND rating IN ('A', 'ZZZ')",
        "rating IN",
        "'ZZZ' is not in the declared domain",
    ),
    ("SELECT COUNT(*) FROM loans WHERE exposure > 'big'", "exposure >", "is not a number"),
    ("SELECT COUNT(*), COUNT(*) FROM loans", "COUNT(*) FROM", "count is asked twice"),
    ("SELECT COUNT(*) FROM loans GROUP BY sector, sector", "…sector", "grouped by twice"),
    ("SELECT COUNT(*) FROM loans ORDER BY exposure", "exposure", "ORDER BY sorts the released"),
    ("SELECT COUNT(*) FROM loans LIMIT 2 OFFSET 1", "1", "OFFSET is not supported"),
    (
        "SELECT sector, PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY exposure) FROM loans "
        "GROUP BY sector",
        "sector,",
        "percentiles are their own computation",
    ),
    ("SELECT COUNT(*) FROM loans WHERE other.rating = 'A'", "other", "unknown table 'other'"),
    ("SELECT 1 FROM loans", "1", "group columns and aggregates"),
    (
        "SELECT COUNT(*) FROM loans GROUP BY sector, rating, region, counterparty_lei",
        "counterparty_lei",
        "is an entity key",
    ),
    # what may follow the dataset's name: nothing that changes which rows are read
    ("SELECT COUNT(*) FROM loans TABLESAMPLE (10 PERCENT)", "TABLESAMPLE", "TABLESAMPLE is not"),
    ("SELECT COUNT(*) FROM loans FOR SYSTEM_TIME AS OF 1", "FOR", "time travel"),
    ("SELECT COUNT(*) FROM loans AT(TIMESTAMP => 1)", "AT", "time travel"),
    ("SELECT COUNT(*) FROM loans WITH (NOLOCK)", "WITH", "table hints are not supported"),
    ("SELECT COUNT(*) FROM loans PIVOT(SUM(lgd) FOR sector IN ('energy'))", "PIVOT", "PIVOT"),
    ("SELECT COUNT(*) FROM loans(1)", "loans", "FROM names one dataset"),
    ("SELECT COUNT(*) FROM loans l (a, b)", "(a", "alias cannot rename its columns"),
    # sizes: sqlglot recursed past Python's limit, pydantic's error escaped (INTERNAL)
    (
        "SELECT COUNT(*) FROM loans WHERE " + "(" * 500 + "exposure > 1" + ")" * 500,
        "(" * 468 + "exposure",  # the 33rd parenthesis
        "parentheses and NOT nest deeper than 32",
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE " + "NOT " * 2000 + "exposure > 1",
        "NOT " * 1968 + "exposure",
        "parentheses and NOT nest deeper than 32",
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE exposure > " + "9" * 1000,
        "exposure >",
        "value: String should have at most 200 characters",
    ),
    (
        "SELECT COUNT(*) FROM loans WHERE rating IN ('A', '" + "x" * 201 + "')",
        "rating IN",
        "values.1: String should have at most 200 characters",
    ),
]
