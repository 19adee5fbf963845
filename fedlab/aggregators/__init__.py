"""fedlab's own aggregator: TFF's compression aggregator with seeded rounding noise."""
