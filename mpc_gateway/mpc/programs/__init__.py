"""MPC programs: the only place mpyc is imported.

mpyc parses ``sys.argv`` and builds its runtime when first imported, so these
modules are imported only inside a worker process whose argv the worker set
(:mod:`mpc_gateway.mpc.worker`), never by the gateway or a node's server.
"""
