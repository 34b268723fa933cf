"""engine"""

from passerelle.engine import compiled as _compiled

_compiled.install()
