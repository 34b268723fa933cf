"""First boot of the appliance, its identity and default network, and the VM console wizard.

Everything here works against a root prefix (``Paths``) and performs every action on the
running system through ``System``, so the whole flow can run in a temporary directory.
"""
