"""Federated algorithms: the protocol the trainer asks (``base``), one module each."""
