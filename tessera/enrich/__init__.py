"""Enrichment: values a dataset gains from its own columns and from related datasets.

- computed columns, SQL expressions over the columns of the same dataset, written in DuckDB's
  dialect, are checked by :mod:`tessera.sqlcheck` and rendered per engine by the engine;
- :mod:`tessera.enrich.aggregates`: a value aggregated from a related dataset;
- :mod:`tessera.enrich.scores`: the ready-made score library computed from orders;
- :mod:`tessera.enrich.engagement`: the library's engagement scores, computed from events;
- :mod:`tessera.enrich.predictive`: MBG/NBD, BG/NBD and Gamma-Gamma customer models.
"""
