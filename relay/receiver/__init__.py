"""The receiving program (``relay run``): its app and lifecycle (``app``), the public
dispatch (``public``), the admin app it shares with the worker (``admin``) and its
background services (``services``).

Imports nothing on purpose: ``relay.worker.process`` takes ``admin`` from here without
pulling in the receiver's parts.
"""
