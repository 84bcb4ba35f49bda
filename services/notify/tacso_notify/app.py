"""notify's Flask application factory."""

from __future__ import annotations

from flask import Flask

from tacso_notify.api import blp, webhooks_blp
from tacso_notify.bootstrap import Notify, bootstrap
from tacso_notify.models import audit_log
from tacso_shared.audit_api import audit_blueprint
from tacso_shared.auth import install_authentication, token_authentication
from tacso_shared.ratelimit import install_rate_limits
from tacso_shared.web import add_health, configure_app


def create_app(notify: Notify | None = None) -> Flask:
    """Build notify's app; nothing connects until a request needs it."""
    notify = notify or bootstrap()
    app = Flask(__name__)
    api = configure_app(app, "TACSO notify", "1.0", notify.settings.common)
    app.extensions["tacso_notify"] = notify
    install_authentication(app, token_authentication(notify.settings.common))
    install_rate_limits(app, notify.settings.common.rate_limits, "notify")
    api.register_blueprint(blp)
    api.register_blueprint(webhooks_blp)
    api.register_blueprint(audit_blueprint(audit_log, lambda: notify.sessions))
    add_health(app, notify.engine)
    return app
