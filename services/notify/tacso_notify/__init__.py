"""The notify service."""

#: The service's name (its settings prefix, its log and metrics label).
SERVICE = "notify"
#: Where its API listens unless NOTIFY_PORT says otherwise.
DEFAULT_PORT = 5003
