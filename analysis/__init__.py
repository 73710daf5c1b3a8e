"""Scaling-law analysis: load runs or imported logs, fit laws, find the frontier, plot.

Modules (import the one you need; this package itself imports nothing heavy, so
``import analysis`` is instant and never pulls in torch or matplotlib):

- :mod:`analysis.io`: load run records and CSV/TSV/JSONL, trainer_state.json and
  TensorBoard logs into one DataFrame with columns ``run, params, tokens, flops, loss``.
- :mod:`analysis.laws`: the law forms (power, saturating, chinchilla, bnsl, bnsl2, kaplan).
- :mod:`analysis.fit`: robust multi-start fitting with bootstrap intervals.
- :mod:`analysis.resample`: which rows a bootstrap draws together (trunks, runs, rows).
- :mod:`analysis.optimal`: the compute-optimal frontier (Chinchilla approaches 1-3).
- :mod:`analysis.backtest`: fit on the smaller runs, predict the largest.
- :mod:`analysis.plots`, :mod:`analysis.report`: figures and a Markdown report.
- :mod:`analysis.cli`: the ``scaling-analyze`` command.
"""
