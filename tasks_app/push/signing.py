"""Standard Webhooks signing: the headers a receiver verifies with any Standard Webhooks
library (``standardwebhooks.Webhook(secret).verify(body, headers)``)."""

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret():
    """Return a fresh ``whsec_…`` secret: 32 random bytes, base64 as the spec writes them."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def headers_for(secret, webhook_id, body, *, now=None):
    """Return the ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers."""
    now = now or datetime.now(UTC)
    now = now.replace(microsecond=0)
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=now, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
