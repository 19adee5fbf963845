"""The ``optimizer`` group: client and server optimizers, the server's rate schedule."""
