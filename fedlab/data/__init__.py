"""Data sources: each returns a :class:`FederatedData`."""

from fedlab.data.federated_data import FederatedData, client_data_from_arrays

__all__ = ["FederatedData", "client_data_from_arrays"]
