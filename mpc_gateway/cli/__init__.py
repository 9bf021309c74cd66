"""``mpcgw``: one command for every role (operator, analyst, auditor).

Exit codes: 0 success; 1 unexpected failure; 2 invalid query or usage;
3 refused (authentication, permission, approval); 4 consortium unavailable,
aborted or out of time; 5 configuration error; 6 a secure result differed from
its plaintext check (demo only).
"""

from __future__ import annotations

from mpc_gateway.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
