"""The publishing side of Herald, in the order of the pipeline: authoring (content files checked), rendering
(editions compiled and personalised), events (an event after its invitation), campaigns (the ledger, the
engine's tasks and what an operator does), delivery (SMTP out, the message bytes), and the `herald` command
(`cli.py`, with `commands/`)."""
