"""The security log names the client and the account, and never carries a secret."""

from __future__ import annotations

from structlog.testing import capture_logs

from bloghub.auth.audit import REDACTED, security_event


def test_an_event_carries_ip_and_user_and_hides_secret_fields() -> None:
    with capture_logs() as lines:
        security_event(
            "login.failed",
            ip="203.0.113.7",
            user_id="u-1",
            password="hunter2",
            refresh_token="r",
            code="123456",
            reason="wrong_password",
        )
    assert lines == [
        {
            "event": "login.failed",
            "log_level": "warning",
            "security": True,
            "ip": "203.0.113.7",
            "user_id": "u-1",
            "password": REDACTED,
            "refresh_token": REDACTED,
            "code": REDACTED,
            "reason": "wrong_password",
        }
    ]
