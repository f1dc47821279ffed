"""The self-management web pages: unsubscribe, preferences, confirmation, the message in a browser."""
