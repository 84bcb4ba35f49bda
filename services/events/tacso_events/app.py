"""The events service's Flask application factory."""

from __future__ import annotations

from flask import Flask

from tacso_events.api import blp
from tacso_events.bootstrap import Events, bootstrap
from tacso_events.feeds_api import blp as feeds_blp
from tacso_events.lifecycle_api import blp as lifecycle_blp
from tacso_events.models import audit_log
from tacso_events.pages import pages
from tacso_events.registrations_api import blp as registrations_blp
from tacso_shared.audit_api import audit_blueprint
from tacso_shared.auth import install_authentication, token_authentication
from tacso_shared.ratelimit import install_rate_limits
from tacso_shared.web import add_health, configure_app


def create_app(events: Events | None = None) -> Flask:
    """Build the events app; nothing connects until a request needs it."""
    events = events or bootstrap()
    app = Flask(__name__)
    api = configure_app(app, "TACSO events", "1.0", events.settings.common)
    app.extensions["tacso_events"] = events
    install_authentication(app, token_authentication(events.settings.common))
    install_rate_limits(app, events.settings.common.rate_limits, "events")
    api.register_blueprint(blp)
    api.register_blueprint(registrations_blp)
    app.register_blueprint(pages)
    api.register_blueprint(lifecycle_blp)
    api.register_blueprint(feeds_blp)
    api.register_blueprint(audit_blueprint(audit_log, lambda: events.sessions))
    add_health(app, events.engine)
    return app
