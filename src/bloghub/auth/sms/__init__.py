"""SMS: phone numbers, one-time codes, providers with failover, and a Postgres outbox.

``SmsCodes`` keeps verification codes in Redis (one Lua script to issue, one to check).
``SmsSender`` sends a text under a global rate: through a failover strategy over guarded
providers (timeout and circuit breaker around every call), and into the outbox when no
provider could deliver or the rate refused; ``run_outbox_worker`` retries the outbox.
"""
