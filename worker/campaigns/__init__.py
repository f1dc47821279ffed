"""The campaign engine: the state machine and the ledger, its tables, the Celery app and tasks, what an
operator does to a campaign, and the installation's namespace."""
