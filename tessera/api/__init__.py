"""The server: one FastAPI application (event collection at ``/v1``, later the REST API and the UI).

Build it with :func:`tessera.api.app.create_app`; run it with :func:`tessera.api.server.serve`.
"""
