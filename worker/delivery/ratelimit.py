"""One sending rate for every worker: a token bucket kept in Redis and moved by one Lua script.

The script runs atomically in Redis and reads Redis's clock (`TIME`), so workers on machines whose
clocks disagree still share one bucket fairly. It reserves the tokens at once and answers how long
the caller must wait for them to have accrued: one round trip per `acquire`, no polling, and callers
are served in the order they asked. The bucket may go into debt; it always refills at `rate`.
"""

from __future__ import annotations

import time

import redis

# KEYS[1]: the bucket, a hash {tokens, at}. ARGV: rate (tokens/s), burst (bucket size), n (tokens wanted).
# Returns the seconds to wait, as a string (Redis would truncate a Lua number to an integer).
_ACQUIRE = """
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - n
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', math.max(0, -tokens / rate))
"""


class RateLimiter:
    """`acquire()` blocks until this worker may send; all limiters with the same key share `rate`.

    `burst` (default: one second's worth, at least 1) is how many may go at once after a quiet spell.
    A rate of 0 or less means no limit, and Redis is never contacted.
    """

    def __init__(self, redis_client: redis.Redis, key: str, rate: float, burst: float | None = None) -> None:
        self.key = key
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._script = redis_client.register_script(_ACQUIRE)  # EVALSHA, loading the script again if Redis lost it

    def acquire(self, n: int = 1) -> float:
        """The seconds this caller waited (for /metrics)."""
        if self.rate <= 0:
            return 0.0
        wait = float(self._script(keys=[self.key], args=[self.rate, self.burst, n]))
        if wait > 0:
            time.sleep(wait)
        return wait
