"""The VM console (tty1): what to browse to, the serial and licence, and a settings wizard."""
