"""How a run trains: federated (a TFF process in fedlab's loop) or central (Keras fit)."""
