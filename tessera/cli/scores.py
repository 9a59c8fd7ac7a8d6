"""The score library: ``tessera scores list``."""

from __future__ import annotations


import typer
from rich.table import Table

from tessera.cli.common import app, console

scores_app = typer.Typer(help="The score library.", no_args_is_help=True)
app.add_typer(scores_app, name="scores")


@scores_app.command("list")
def scores_list() -> None:
    """List the library's scores with the semantic fields each needs and the columns it adds."""
    from tessera.enrich.scores import LIBRARY

    t = Table(title="Score library (docs/scores.md)")
    for col in ("score", "needs", "columns", "what"):
        t.add_column(col, no_wrap=col == "score")
    for d in LIBRARY.values():
        needs = ", ".join(n.replace("item:", "order items: ") for n in d.needs)
        t.add_row(d.name, needs, "\n".join(d.columns), d.description)
    t.add_row("predictive (scores.predictive: true)", "OrderDate, OrderAmount",
              "score_probability_alive\nscore_churn_risk\nscore_expected_purchases_90d\nscore_predicted_clv\n"
              "score_days_to_next_order\nscore_next_order_date",
              "MBG/NBD and Gamma-Gamma models fitted on the workspace's orders.")
    console.print(t)


