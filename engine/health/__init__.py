"""Health checking of real servers: a pure up/down state machine, the probes that feed it, and
the monitor that runs one probing greenlet per real server and announces every change."""
