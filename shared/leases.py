"""Account concurrency slots as Redis leases with a TTL.

One sorted set per account and kind: members are job ids, scores the lease
expiry in milliseconds on the Redis clock. Acquire, renew and release are
atomic scripts, so any number of workers can share the pool, and a slot held by
a worker that died frees itself when its lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from shared.metrics import LEASE_OPERATIONS
from shared.names import Keys

# KEYS: candidate lease sets, in order of preference. ARGV: member, ttl_ms, limit_1..limit_n.
# Takes a slot in the set with the fewest live leases that has room (the first of equals), or the one that
# already holds this member; returns its index, or -1.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local ttl = tonumber(ARGV[2])
local best, fewest = -1, nil
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, member) then
    best = i
    break
  end
  local held = redis.call('ZCARD', key)
  if limit > 0 and held < limit and (fewest == nil or held < fewest) then
    best, fewest = i, held
  end
end
if best < 0 then
  return -1
end
redis.call('ZADD', KEYS[best], now + ttl, member)
redis.call('PEXPIRE', KEYS[best], ttl)
return best - 1
"""

# KEYS[1]: a lease set, KEYS[2]: its kind's count of freed slots. ARGV[1]: member. Gives the slot back and
# counts it; returns 1, or 0 when the member held none.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
"""

# KEYS[1]: a lease set. ARGV: ttl_ms, members… Re-takes (or, after a Redis restart, rebuilds) each slot.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return #ARGV - 1
"""

_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class Leases:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._count = redis.register_script(_COUNT)

    async def acquire(self, kind: str, job_id: str, candidates: Sequence[tuple[int, int]]) -> int | None:
        """Take a slot on the ``(account_id, limit)`` with the fewest live leases that has one (the first of
        equals, so candidates go in order of preference), or keep the one this job already holds; return
        that account id. One script however many candidates: concurrent acquires are ordered by Redis, so
        each one sees the slots the others took, even on accounts whose rows it read before they did."""
        if not candidates:
            return None
        keys = [self._keys.lease(account_id, kind) for account_id, _ in candidates]
        limits = [limit for _, limit in candidates]
        index = int(await self._acquire(keys=keys, args=[job_id, self._ttl_ms, *limits]))
        LEASE_OPERATIONS.labels(kind, "full" if index < 0 else "acquired").inc()
        return None if index < 0 else candidates[index][0]

    async def renew(self, account_id: int, kind: str, job_ids: Sequence[str]) -> None:
        if job_ids:
            await self._renew(keys=[self._keys.lease(account_id, kind)], args=[self._ttl_ms, *job_ids])
            LEASE_OPERATIONS.labels(kind, "renewed").inc(len(job_ids))

    async def renew_many(self, groups: Mapping[tuple[int, str], Sequence[str]]) -> None:
        """``renew`` for each ``(account_id, kind)`` and its job ids, in one round trip."""
        groups = {pair: job_ids for pair, job_ids in groups.items() if job_ids}
        if not groups:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for (account_id, kind), job_ids in groups.items():
                await self._renew(
                    keys=[self._keys.lease(account_id, kind)], args=[self._ttl_ms, *job_ids], client=pipe
                )
            await pipe.execute()
        for (_, kind), job_ids in groups.items():
            LEASE_OPERATIONS.labels(kind, "renewed").inc(len(job_ids))

    async def release(self, account_id: int, kind: str, job_id: str) -> None:
        keys = [self._keys.lease(account_id, kind), self._keys.leases_freed(kind)]
        if await self._release(keys=keys, args=[job_id]):
            LEASE_OPERATIONS.labels(kind, "released").inc()

    async def freed(self, kind: str) -> int:
        """How many slots of this kind have been given back so far: it moves whenever one frees up (apart
        from leases that run out, which a dead worker leaves)."""
        return int(await self._redis.get(self._keys.leases_freed(kind)) or 0)

    async def in_use(self, account_id: int, kind: str) -> int:
        return int(await self._count(keys=[self._keys.lease(account_id, kind)]))

    async def in_use_many(self, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """Live slots per ``(account_id, kind)`` in one round trip (expired leases not counted)."""
        if not pairs:
            return {}
        now_ms = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for account_id, kind in pairs:
                pipe.zcount(self._keys.lease(account_id, kind), now_ms, "+inf")
            counts = await pipe.execute()
        return {pair: int(count) for pair, count in zip(pairs, counts, strict=True)}
