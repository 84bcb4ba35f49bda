"""The suite's root conftest: loads the one fixtures plugin (``support.fixtures``).

Fixtures shared by more than one folder live in that plugin; a folder's conftest holds only what
that folder alone uses.
"""

pytest_plugins = ["support.fixtures"]
