"""The registry service."""

#: The service's name (its settings prefix, its log and metrics label).
SERVICE = "registry"
#: Where its API listens unless REGISTRY_PORT says otherwise.
DEFAULT_PORT = 5001
