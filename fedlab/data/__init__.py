"""Data sources: each returns a :class:`FederatedData`."""

from fedlab.data.federated_data import ArrayClientData, FederatedData, client_data_from_arrays

__all__ = ["ArrayClientData", "FederatedData", "client_data_from_arrays"]
