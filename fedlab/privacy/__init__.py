"""Differential privacy: DP-FedAvg's aggregator, its seeded noise, the epsilon accounting."""
