"""The Lua scripts :class:`howhard.ledger.RedisLedger` runs on the server, one per operation.

Each script is one atomic step on a Redis-protocol server (Valkey or Redis): it reads the
server's clock (``TIME``, unless a test passes a time), first *sweeps* the tenant's books —
leases whose expiry has passed release their holds, settled usage older than the window leaves
it — and then applies :mod:`howhard.ledger.rules` exactly as the in-memory store does. The
conformance suite proves the two agree.

Keys of one tenant (``P`` is the store's key prefix)::

    P{tenant}:acct     hash  s*/w*/r* = settled / in the window / reserved (u units, p prompt
                             tokens, c completion tokens, m cost micros); open, rejected,
                             degraded, expired (leases that lapsed), peak_u/peak_t/peak_m (the
                             most ever held at once: window + open holds, checked at each reserve),
                             lnext/wnext (when the next lease / window event can expire)
    P{tenant}:leases   zset  lease id -> expiry time (server seconds)
    P{tenant}:holds    hash  lease id -> "budget,u,p,c,m" held
    P{tenant}:events   zset  "id:u,p,c,m" charged -> settle time (only for windowed quotas)
    P{tenant}:done:ID  str   "u,p,c,m" charged by a settled lease (expires): a retried settle
                             returns it instead of charging again
    Ptenants           set   every tenant the store has seen (for snapshots)

Integers cross the Lua boundary as strings formatted with ``%d`` and times as ``%.17g`` (Lua
5.1 would print ``1e+15`` or round a timestamp to 14 digits otherwise).
"""

from __future__ import annotations

__all__ = ["REFUND", "RENEW", "RESERVE", "SETTLE", "SNAPSHOT", "TENANTS"]

TENANTS = "return redis.call('SMEMBERS', KEYS[1])"
"""Every tenant the store has seen (KEYS[1] = the tenants set)."""

# KEYS[1..4] = acct, leases, holds, events; ARGV[1] = time ('' = the server's), ARGV[2] = window
# in seconds ('-1' = none). Every script starts with these helpers and a sweep; the account is
# read with one HMGET, changed in Lua and written back with one HSET (save), so a script costs
# a handful of commands whatever it changes.
_COMMON = r"""
local acct, leases, holds, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local FIELDS = {'u', 'p', 'c', 'm'}
local REPORT = {'su', 'sp', 'sc', 'sm', 'wu', 'wp', 'wc', 'wm', 'ru', 'rp', 'rc', 'rm', 'open',
                'rejected', 'degraded', 'expired', 'peak_u', 'peak_t', 'peak_m'}
-- lnext: no lease expires before it; wnext: when the oldest window event was settled (-1: no
-- leases / no events). They spare the sweeps a query when nothing can have expired.
local NAMES = {unpack(REPORT)}
NAMES[#NAMES + 1] = 'lnext'
NAMES[#NAMES + 1] = 'wnext'

local function num(x) return string.format('%.17g', x) end
local function int(x) return string.format('%d', x) end

local function split(s)
  local out = {}
  for x in string.gmatch(s, '[^,]+') do out[#out + 1] = tonumber(x) end
  return out
end

local A, dirty = {}, {}
do
  local values = redis.call('HMGET', acct, unpack(NAMES))
  for i, name in ipairs(NAMES) do A[name] = tonumber(values[i]) or 0 end
  if not values[#REPORT + 1] then A.lnext = -1 end
  if not values[#REPORT + 2] then A.wnext = -1 end
end
local function bump(name, delta)
  if delta ~= 0 then A[name] = A[name] + delta; dirty[name] = true end
end
local function raise(name, value)  -- the audit's high-water marks
  if value > A[name] then A[name] = value; dirty[name] = true end
end
-- add sign * a[first .. first + 3] to the tally named by prefix ('s', 'w' or 'r')
local function add(prefix, a, first, sign)
  for i = 1, 4 do bump(prefix .. FIELDS[i], sign * a[first + i - 1]) end
end
local function save()
  local args = {}
  for name in pairs(dirty) do
    local v = A[name]
    args[#args + 1] = name
    args[#args + 1] = (math.floor(v) == v) and int(v) or num(v)
  end
  if #args > 0 then redis.call('HSET', acct, unpack(args)) end
end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local window = tonumber(ARGV[2])

-- Leases whose expiry has passed: their holders stopped renewing (died), so release the holds.
if A.lnext >= 0 and A.lnext <= now then
  local lapsed = redis.call('ZRANGEBYSCORE', leases, '-inf', num(now))
  for _, id in ipairs(lapsed) do
    local held = redis.call('HGET', holds, id)
    if held then
      add('r', split(held), 2, -1)
      redis.call('HDEL', holds, id)
      bump('open', -1)
      bump('expired', 1)
    end
  end
  if #lapsed > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', num(now)) end
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  A.lnext = first[2] and tonumber(first[2]) or -1
  dirty.lnext = true
end

-- Settled usage leaves the window when now - settled_at >= window (rules.in_window). The score
-- range finds the candidates cheaply (with a millisecond to spare for rounding); each is then
-- tested in the same float arithmetic as the in-memory store, oldest first.
if window > 0 and A.wnext >= 0 and not (now - A.wnext < window) then
  while true do
    local old = redis.call('ZRANGEBYSCORE', events, '-inf', num(now - window + 0.001),
                           'WITHSCORES', 'LIMIT', 0, 64)
    local done = #old < 128
    for i = 1, #old, 2 do
      if now - tonumber(old[i + 1]) < window then done = true break end
      local member = old[i]
      add('w', split(string.sub(member, string.find(member, ':', 1, true) + 1)), 1, -1)
      redis.call('ZREM', events, member)
    end
    if done then break end
  end
  local first = redis.call('ZRANGE', events, 0, 0, 'WITHSCORES')
  A.wnext = first[2] and tonumber(first[2]) or -1
  dirty.wnext = true
end
"""

RESERVE = (
    _COMMON
    + r"""
-- KEYS[5] = tenants set. ARGV[3] tenant, [4] lease id, [5] "ttl,limit units,limit tokens,limit
-- cost micros,degrade" (limit -1 = none; degrade 1 or 0), [6] the holds "budget,u,p,c,m;...":
-- the requested hold first, then the fallbacks in increasing order. (Few, packed arguments:
-- encoding each argument is most of the client's cost.)
redis.call('SADD', KEYS[5], ARGV[3])
local id = ARGV[4]
local existing = redis.call('HGET', holds, id)
if existing then save() return {'ok', existing} end  -- a retried reserve whose reply was lost

local held = {A.wu + A.ru, A.wp + A.rp, A.wc + A.rc, A.wm + A.rm}
local opts = split(ARGV[5])
local ttl, lu, lt, lm, degrade = opts[1], opts[2], opts[3], opts[4], opts[5]
local texts, H = {}, {}
for part in string.gmatch(ARGV[6], '[^;]+') do texts[#texts + 1] = part; H[#H + 1] = split(part) end

local function at(k, i) return H[k + 1][i] end  -- i: 1 budget, 2..5 amount
local function fits(k)
  if lu >= 0 and held[1] + at(k, 2) > lu then return false end
  if lt >= 0 and held[2] + held[3] + at(k, 3) + at(k, 4) > lt then return false end
  if lm >= 0 and held[4] + at(k, 5) > lm then return false end
  return true
end

local n = #H
local pick = -1
if fits(0) then
  pick = 0
elseif degrade == 1 and n > 1 then
  -- Amounts grow with the budget, so "fits" is monotone: the largest fallback that fits.
  local lo, hi = 1, n - 1
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    if fits(mid) then pick, lo = mid, mid + 1 else hi = mid - 1 end
  end
end
if pick < 0 then
  bump('rejected', 1)
  save()
  return {'no', int(held[1]) .. ',' .. int(held[2]) .. ',' .. int(held[3]) .. ',' .. int(held[4])}
end

local record = texts[pick + 1]
redis.call('HSET', holds, id, record)
redis.call('ZADD', leases, num(now + ttl), id)
if A.lnext < 0 or now + ttl < A.lnext then A.lnext = now + ttl; dirty.lnext = true end
add('r', H[pick + 1], 2, 1)
bump('open', 1)
if pick > 0 then bump('degraded', 1) end
-- The audit: the most ever held at once (window + open holds), per limited quantity.
raise('peak_u', held[1] + at(pick, 2))
raise('peak_t', held[2] + held[3] + at(pick, 3) + at(pick, 4))
raise('peak_m', held[4] + at(pick, 5))
save()
return {'ok', record}
"""
)

SETTLE = (
    _COMMON
    + r"""
-- KEYS[5] = this lease's done key. ARGV[3] lease id, [4] actual "u,p,c,m" (>= 0, checked by
-- the client), [5] how long to remember the charge (ms).
local id = ARGV[3]
local record = redis.call('HGET', holds, id)
if not record then
  -- Closed already (a retry after a lost reply gets the first charge back) or lapsed: no change.
  save()
  local first = redis.call('GET', KEYS[5])
  if first then return {'done', first} end
  return {'gone', ''}
end
local h, actual = split(record), split(ARGV[4])
local charged = {}
for i = 1, 4 do charged[i] = math.min(actual[i], h[i + 1]) end
redis.call('HDEL', holds, id)
redis.call('ZREM', leases, id)
add('r', h, 2, -1)
bump('open', -1)
add('s', charged, 1, 1)
add('w', charged, 1, 1)
local text = int(charged[1]) .. ',' .. int(charged[2]) .. ',' .. int(charged[3]) .. ','
  .. int(charged[4])
if window > 0 then
  redis.call('ZADD', events, num(now), id .. ':' .. text)
  if A.wnext < 0 then A.wnext = now; dirty.wnext = true end
end
save()
redis.call('SET', KEYS[5], text, 'PX', ARGV[5])
return {'ok', text}
"""
)

REFUND = (
    _COMMON
    + r"""
-- ARGV[3] lease id. Refunding a lease that is closed or lapsed changes nothing.
local id = ARGV[3]
local record = redis.call('HGET', holds, id)
if record then
  redis.call('HDEL', holds, id)
  redis.call('ZREM', leases, id)
  add('r', split(record), 2, -1)
  bump('open', -1)
end
save()
return record and 1 or 0
"""
)

RENEW = (
    _COMMON
    + r"""
-- ARGV[3] ttl seconds, ARGV[4..] lease ids. Extends the leases still open; returns those that
-- are not (closed, or lapsed before this renewal), so the holder stops renewing them.
save()
local lost = {}
local expiry = num(now + tonumber(ARGV[3]))
for i = 4, #ARGV do
  if redis.call('ZSCORE', leases, ARGV[i]) then
    redis.call('ZADD', leases, 'XX', expiry, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
)

SNAPSHOT = (
    _COMMON
    + r"""
-- The tenant's account after the sweep (in REPORT order), then the leases on the server.
save()
local out = {}
for i, name in ipairs(REPORT) do out[i] = int(A[name]) end
out[#out + 1] = tostring(redis.call('ZCARD', leases))
return out
"""
)
