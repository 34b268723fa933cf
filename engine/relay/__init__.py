"""Layer-4 relays of the data plane: TCP byte relay (zero-copy splice) and UDP virtual services."""
