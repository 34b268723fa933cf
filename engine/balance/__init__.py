"""Load-balancing decisions over plain data: which real server takes a connection (scheduling)
and which one a returning client must go back to (persistence). No sockets, no I/O."""
