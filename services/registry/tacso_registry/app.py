"""The registry's Flask application factory."""

from __future__ import annotations

from flask import Flask

from tacso_registry.api import blp
from tacso_registry.auth_api import blp as credentials_blp
from tacso_registry.auth_api import well_known
from tacso_registry.bootstrap import Registry, bootstrap
from tacso_registry.models import audit_log
from tacso_registry.pages import pages
from tacso_registry.preference_pages import pages as preference_pages
from tacso_registry.signup_api import blp as joining_blp
from tacso_shared.audit_api import audit_blueprint
from tacso_shared.auth import install_authentication
from tacso_shared.ratelimit import install_rate_limits
from tacso_shared.web import add_health, configure_app


def create_app(registry: Registry | None = None) -> Flask:
    """Build the registry app; nothing connects until a request needs it."""
    registry = registry or bootstrap()
    app = Flask(__name__)
    api = configure_app(app, "TACSO registry", "1.0", registry.settings.common)
    app.extensions["tacso_registry"] = registry
    install_authentication(app, registry.authentication())
    install_rate_limits(app, registry.settings.common.rate_limits, "registry")
    api.register_blueprint(blp)
    api.register_blueprint(credentials_blp)
    api.register_blueprint(well_known)
    api.register_blueprint(joining_blp)
    app.register_blueprint(pages)
    api.register_blueprint(audit_blueprint(audit_log, lambda: registry.sessions))
    app.register_blueprint(preference_pages)
    add_health(app, registry.engine)
    return app
