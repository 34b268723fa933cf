"""Active/standby HA pairs: keepalived moves the shared addresses, the engine replicates.

Kept free of imports: keepalived runs ``python -m passerelle.engine.ha.notify`` and
``...ha.check`` often, and they must start fast.
"""
