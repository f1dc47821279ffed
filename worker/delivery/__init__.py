"""Getting a message out: the .eml writer, the SMTP edge, the rate limiter, the local outbox sink."""
