"""Clients: sampling, simulated devices, datasets for the worker, client state, bits."""
