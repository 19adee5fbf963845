"""fedlab's own aggregators (options of the ``aggregator`` group besides TFF's own factories).

- :mod:`~fedlab.aggregators.compression`: TFF's compression aggregator with seeded rounding.
- Byzantine-robust statistics of the clients' updates, collected side by side
  (:mod:`~fedlab.aggregators.stacked`): :mod:`~fedlab.aggregators.median`,
  :mod:`~fedlab.aggregators.trimmed_mean`, :mod:`~fedlab.aggregators.krum` (Krum and
  Multi-Krum), :mod:`~fedlab.aggregators.geometric_median` (RFA) and
  :mod:`~fedlab.aggregators.centered_clipping`; each one module.
"""
