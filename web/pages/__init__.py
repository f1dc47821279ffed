"""The pages a subscriber reaches from a link or the public form: unsubscribe, preferences, subscribe and
confirm, the message in a browser and the archive, RSVP, and the public event calendar."""
