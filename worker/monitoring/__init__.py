"""Knowing Herald works without a terminal: readiness checks, metrics from the ledger and Redis, and what
workers observe that the ledger does not keep."""
