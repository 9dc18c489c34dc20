"""Stripe's official Python library, unchanged, against the Flint sandbox.

Run by tests/stripe_python.rs with SANDBOX_URL and SANDBOX_KEY set. Exits non-zero (with a
traceback) on the first behaviour that differs from Stripe's documented one.
"""

import os
import uuid

import stripe

client = stripe.StripeClient(
    os.environ["SANDBOX_KEY"],
    base_addresses={"api": os.environ["SANDBOX_URL"]},
    max_network_retries=0,
)

# Customers and saved cards.
customer = client.v1.customers.create(params={"name": "Ann", "email": "ann@example.com", "metadata": {"crm": "42"}})
assert customer.id.startswith("cus_"), customer
assert customer.metadata["crm"] == "42"
pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
assert pm.id.startswith("pm_") and pm.card.last4 == "4242" and pm.card.brand == "visa", pm
client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
fetched = client.v1.customers.retrieve(customer.id)
assert fetched.invoice_settings.default_payment_method == pm.id
methods = client.v1.customers.payment_methods.list(customer.id, params={"type": "card"})
assert [m.id for m in methods.data] == [pm.id]

# An off-session charge that succeeds, with an idempotency key, replayed.
key = str(uuid.uuid4())
params = {
    "amount": 2000,
    "currency": "usd",
    "customer": customer.id,
    "payment_method": pm.id,
    "confirm": True,
    "off_session": True,
    "metadata": {"flint_payment_id": "osp_py"},
    "expand": ["latest_charge"],
}
intent = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
assert intent.status == "succeeded", intent
assert intent.amount_received == 2000
assert intent.latest_charge.object == "charge" and intent.latest_charge.paid
again = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
assert again.id == intent.id
assert again.last_response.headers.get("Idempotent-Replayed") == "true"

# The same key with other parameters.
try:
    client.v1.payment_intents.create(params={**params, "amount": 2001}, options={"idempotency_key": key})
    raise AssertionError("reusing a key with other parameters must fail")
except stripe.IdempotencyError as e:
    assert "Try using a key other than" in e.user_message

# Declines are CardErrors with Stripe's codes; the intent stays retrievable.
declined_pm = client.v1.payment_methods.attach("pm_card_chargeDeclinedInsufficientFunds", params={"customer": customer.id})
try:
    client.v1.payment_intents.create(params={**params, "payment_method": declined_pm.id, "expand": []})
    raise AssertionError("a decline must raise")
except stripe.CardError as e:
    assert e.http_status == 402
    assert e.code == "card_declined" and e.error.decline_code == "insufficient_funds", e.error
    failed_id = e.error.payment_intent.id
failed = client.v1.payment_intents.retrieve(failed_id)
assert failed.status == "requires_payment_method"
assert failed.last_payment_error.decline_code == "insufficient_funds"

# Retry the declined intent with the good card.
recovered = client.v1.payment_intents.confirm(failed_id, params={"payment_method": pm.id, "off_session": True})
assert recovered.status == "succeeded"

# Authentication required off-session.
auth_pm = client.v1.payment_methods.attach("pm_card_authenticationRequired", params={"customer": customer.id})
try:
    client.v1.payment_intents.create(params={**params, "payment_method": auth_pm.id, "expand": []})
    raise AssertionError("authentication_required must raise")
except stripe.CardError as e:
    assert e.code == "authentication_required"

# Cancel and list.
open_intent = client.v1.payment_intents.create(params={"amount": 700, "currency": "eur", "customer": customer.id})
canceled = client.v1.payment_intents.cancel(open_intent.id, params={"cancellation_reason": "abandoned"})
assert canceled.status == "canceled"
listed = client.v1.payment_intents.list(params={"customer": customer.id, "limit": 2})
assert len(listed.data) == 2 and listed.has_more
everything = [i.id for i in client.v1.payment_intents.list(params={"customer": customer.id}).auto_paging_iter()]
assert len(everything) == 4 and everything[0] == open_intent.id, everything

# Request errors name the parameter.
try:
    client.v1.payment_intents.create(params={"amount": 10, "currency": "usd"})
    raise AssertionError("amount_too_small must raise")
except stripe.InvalidRequestError as e:
    assert e.code == "amount_too_small" and e.param == "amount"
try:
    client.v1.payment_intents.retrieve("pi_missing")
    raise AssertionError("a missing intent must raise")
except stripe.InvalidRequestError as e:
    assert e.http_status == 404 and e.code == "resource_missing"

# A bad key is an AuthenticationError.
bad = stripe.StripeClient("sk_test_wrongwrongwrong", base_addresses={"api": os.environ["SANDBOX_URL"]})
try:
    bad.v1.customers.retrieve(customer.id)
    raise AssertionError("a bad key must raise")
except stripe.AuthenticationError:
    pass

print("stripe-python main flows: ok")
