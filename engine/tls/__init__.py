"""TLS for virtual services: certificates, SNI selection, offload and re-encryption contexts.

``certificates`` reads and makes certificates, ``sni`` picks one by server name, ``contexts``
builds the standard-library ``ssl`` contexts that the data plane (gevent's ``ssl``) wraps.
"""
