"""Verifies a herm webhook delivery (the Standard Webhooks scheme).

Usage in a receiver: verify(secret, headers, body) with the raw request body bytes.
From a shell: WEBHOOK_SECRET=… WEBHOOK_ID=… WEBHOOK_TIMESTAMP=… WEBHOOK_SIGNATURE=… \
    python3 verify_webhook.py < body.json   (exit status 0 when valid)
"""

import base64
import hashlib
import hmac
import os
import sys
import time

TOLERANCE_SECONDS = 300


def verify(secret: bytes, msg_id: str, timestamp: str, signature_header: str, body: bytes) -> bool:
    # Refuse old (replayed) or future deliveries.
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    # The header may carry several space-separated signatures (`v1,<base64>`).
    for part in signature_header.split():
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


if __name__ == "__main__":
    ok = verify(
        os.environ["WEBHOOK_SECRET"].encode(),
        os.environ["WEBHOOK_ID"],
        os.environ["WEBHOOK_TIMESTAMP"],
        os.environ["WEBHOOK_SIGNATURE"],
        sys.stdin.buffer.read(),
    )
    sys.exit(0 if ok else 1)
