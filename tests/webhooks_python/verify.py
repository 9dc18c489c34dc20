"""Verifies webhook deliveries Flint made, with the official Standard Webhooks library.

Reads JSON on stdin: {"secret": "whsec_...", "deliveries": [{"headers": {...}, "body": "..."}],
"expect": "valid" | "invalid"}. Prints "verified N" when every delivery verifies (or, with
"invalid", when none does) and exits non-zero otherwise.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
hook = Webhook(request["secret"])
want_valid = request["expect"] == "valid"
for delivery in request["deliveries"]:
    try:
        payload = hook.verify(delivery["body"], delivery["headers"])
        ok = True
    except WebhookVerificationError as e:
        ok = False
        error = e
    if ok != want_valid:
        detail = "" if ok else f": {error}"
        print(f"delivery {delivery['headers'].get('webhook-id')} verified={ok}{detail}")
        sys.exit(1)
    if ok and payload["id"] != delivery["headers"]["webhook-id"]:
        print("the body's event id is not the webhook-id")
        sys.exit(1)
print(f"verified {len(request['deliveries'])}")
