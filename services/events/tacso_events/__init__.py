"""The events service."""

#: The service's name (its settings prefix, its log and metrics label).
SERVICE = "events"
#: Where its API listens unless EVENTS_PORT says otherwise.
DEFAULT_PORT = 5002
