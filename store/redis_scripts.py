"""The Lua scripts of the Redis store: each one small, generic and atomic.

No status rule lives here (they are all in actors/state.py): the scripts only check that a write
is allowed (the writer's node still holds its lease epoch, it owns the record or claims it, the
record is at the version the writer last saw) and then write everything that goes with it in one
step: the record, the status sets and counters, the bounded history, and the change-feed entry.

Every key a script touches carries the one hash tag of the key prefix (`{presence}`), so the
scripts run unchanged on Redis Cluster; the per-client and per-node keys are built in the script
from that prefix (they are in the same slot). Feed entries get explicit ids `0-<n>` from one
counter (`feed:seq`), so an `eventId` is the integer `n`: the same type as on SQLite.
"""

from __future__ import annotations

# KEYS: 1 prefix (e.g. "{presence}:")
# ARGV: 1 op id, 2 mode ("change" | "touch" | "delete"), 3 node, 4 node epoch, 5 take ("1"/"0"),
#       6 expected version ("" = not checked), 7 status, 8 guest ("1"/"0"), 9 connections,
#       10 version, 11 record JSON, 12 last_seen, 13 last_contact ("" = none),
#       14 feed event ("" = none), 15 event payload JSON (no eventId), 16 history entry JSON,
#       17 feed backlog, 18 history cap, 19 claim only from this owner ("" = any), 20 name
# Answers {outcome, n, owner}: "ok" (n = event id or 0), "dup" (this op was applied already),
# "fenced" (the node's lease epoch is gone), "deposed" (another node owns the record),
# "stale" (the record moved past the expected version), "moved" (not the owner to claim from);
# `owner` is the record's owner before the write. Taking a record from a live owner tells that
# owner (a `deposed` message in its inbox), so its actor stands down at once.
COMMIT = r"""
local p = KEYS[1]
local name = ARGV[20]
local op, mode, node, epoch, take = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ckey = p .. 'client:' .. name
local cur = redis.call('HMGET', ckey, 'version', 'status', 'guest', 'connections', 'node',
                       'epoch', 'op')
local exists = cur[1] ~= false
local owner = cur[5] or ''
if exists and cur[7] == op then
  return {'dup', 0, owner}
end
if redis.call('HGET', p .. 'node:epochs', node) ~= epoch then
  return {'fenced', 0, owner}
end
if ARGV[19] ~= '' and (not exists or owner ~= ARGV[19]) then
  return {'moved', 0, owner}
end
if exists and mode ~= 'delete' and take ~= '1' and (owner ~= node or cur[6] ~= epoch) then
  return {'deposed', 0, owner}
end
if exists and ARGV[6] ~= '' and tonumber(cur[1]) ~= tonumber(ARGV[6]) then
  return {'stale', 0, owner}
end
if exists and mode ~= 'delete' and owner ~= node and owner ~= '' and ARGV[19] == '' then
  redis.call('RPUSH', p .. 'inbox:' .. owner,
             cjson.encode({k = 'deposed', name = name, by = node}))
end
local counts = p .. 'counts'
if exists then
  redis.call('SREM', p .. 'status:' .. cur[2], name)
  redis.call('HINCRBY', counts, cur[2], -1)
  redis.call('HINCRBY', counts, 'connections', 0 - tonumber(cur[4]))
  redis.call('SREM', p .. 'owned:' .. cur[5], name)
  if cur[3] == '1' then
    redis.call('HINCRBY', counts, 'guests', -1)
  end
end
local n = 0
if mode == 'delete' then
  if not exists then
    return {'ok', 0, owner}
  end
  redis.call('DEL', ckey, p .. 'history:' .. name)
  if owner ~= node and owner ~= '' then
    redis.call('RPUSH', p .. 'inbox:' .. owner, cjson.encode({k = 'removed', name = name}))
  end
  redis.call('SREM', p .. 'guests', name)
  redis.call('HINCRBY', counts, 'total', -1)
else
  if not exists then
    redis.call('HINCRBY', counts, 'total', 1)
  end
  local status, guest = ARGV[7], ARGV[8]
  redis.call('SADD', p .. 'status:' .. status, name)
  redis.call('HINCRBY', counts, status, 1)
  redis.call('HINCRBY', counts, 'connections', tonumber(ARGV[9]))
  redis.call('SADD', p .. 'owned:' .. node, name)
  if guest == '1' then
    redis.call('SADD', p .. 'guests', name)
    redis.call('HINCRBY', counts, 'guests', 1)
  end
  redis.call('HSET', ckey, 'status', status, 'guest', guest, 'connections', ARGV[9],
             'version', ARGV[10], 'node', node, 'epoch', epoch, 'op', op, 'data', ARGV[11])
  if ARGV[12] ~= '' then redis.call('HSET', ckey, 'last_seen', ARGV[12]) end
  if ARGV[13] ~= '' then redis.call('HSET', ckey, 'last_contact', ARGV[13]) end
  if ARGV[14] == '' then  -- no status change (sockets, owner, ip): other nodes' copies follow
    redis.call('XADD', p .. 'touches', 'MAXLEN', '~', ARGV[17], '*', 'r', ARGV[11])
  end
end
if ARGV[14] ~= '' then
  n = redis.call('INCR', p .. 'feed:seq')
  local fields = {'e', ARGV[14], 'n', name, 's', ARGV[7], 'd', ARGV[15]}
  if mode ~= 'delete' then
    table.insert(fields, 'r')
    table.insert(fields, ARGV[11])
  end
  redis.call('XADD', p .. 'feed', 'MAXLEN', '~', ARGV[17], '0-' .. n, unpack(fields))
  if ARGV[16] ~= '' then
    local hkey = p .. 'history:' .. name
    redis.call('LPUSH', hkey, n .. ' ' .. ARGV[16])
    redis.call('LTRIM', hkey, 0, tonumber(ARGV[18]) - 1)
  end
  if mode ~= 'delete' then
    redis.call('HSET', ckey, 'event', n)
  end
end
return {'ok', n, owner}
"""

# Contact times of records the node owns (the heartbeat path, batched about once a second).
# KEYS: 1 prefix. ARGV: 1 node, 2 node epoch, then name, last_seen, last_contact triples.
# Answers how many records were written, or -1 when the node is fenced.
CONTACTS = r"""
local p = KEYS[1]
local node, epoch = ARGV[1], ARGV[2]
if redis.call('HGET', p .. 'node:epochs', node) ~= epoch then
  return -1
end
local written = 0
for i = 3, #ARGV, 3 do
  local ckey = p .. 'client:' .. ARGV[i]
  local owner = redis.call('HMGET', ckey, 'node', 'epoch')
  if owner[1] == node and owner[2] == epoch then
    if ARGV[i + 1] ~= '' and ARGV[i + 2] ~= '' then
      redis.call('HSET', ckey, 'last_seen', ARGV[i + 1], 'last_contact', ARGV[i + 2])
    elseif ARGV[i + 1] ~= '' then
      redis.call('HSET', ckey, 'last_seen', ARGV[i + 1])
    elseif ARGV[i + 2] ~= '' then
      redis.call('HSET', ckey, 'last_contact', ARGV[i + 2])
    end
    written = written + 1
  end
end
return written
"""

# A node (re)joins: a new epoch for it (its previous incarnation is fenced at once), its lease,
# the data set's id (created when missing: an empty Redis), and the feed counter kept at least
# at `floor` (so event ids never go back, even when Redis lost its data).
# KEYS: 1 prefix. ARGV: 1 node, 2 lease ms, 3 node info JSON, 4 new data set id, 5 floor.
# Answers {epoch, data set id, now ms}.
REGISTER = r"""
local p = KEYS[1]
local node = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', p .. 'dataset', ARGV[4], 'NX')
local dataset = redis.call('GET', p .. 'dataset')
local seq = tonumber(redis.call('GET', p .. 'feed:seq') or '0')
if seq < tonumber(ARGV[5]) then
  redis.call('SET', p .. 'feed:seq', ARGV[5])
end
local hello = cjson.encode({k = 'hello', node = node})
for _, other in ipairs(redis.call('HKEYS', p .. 'node:epochs')) do
  if other ~= node then  -- the others count this node at once, not at their next look
    redis.call('RPUSH', p .. 'inbox:' .. other, hello)
  end
end
local epoch = redis.call('HINCRBY', p .. 'node:incarnations', node, 1)
redis.call('HSET', p .. 'node:epochs', node, epoch)
redis.call('ZADD', p .. 'node:leases', now + tonumber(ARGV[2]), node)
redis.call('HSET', p .. 'nodes', node, ARGV[3])
return {tostring(epoch), dataset, now}
"""

# Renew a node's lease. KEYS: 1 prefix. ARGV: 1 node, 2 epoch, 3 lease ms, 4 node info JSON,
# 5 data set id. Answers {outcome, now ms}: "ok", "empty" (the data set is gone or another),
# "fenced" (the epoch was taken away: the lease lapsed and a survivor reaped the node).
RENEW = r"""
local p = KEYS[1]
local node, epoch = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('GET', p .. 'dataset') ~= ARGV[5] then
  return {'empty', now}
end
if redis.call('HGET', p .. 'node:epochs', node) ~= epoch then
  return {'fenced', now}
end
redis.call('ZADD', p .. 'node:leases', now + tonumber(ARGV[3]), node)
redis.call('HSET', p .. 'nodes', node, ARGV[4])
return {'ok', now}
"""

# Claim the nodes whose lease lapsed: exactly one caller gets each (the lease goes with it, and
# the node's epoch, which fences it). KEYS: 1 prefix. ARGV: 1 the calling node.
# Answers a flat list: node, lapsed-at ms, node, lapsed-at ms, ...
REAP = r"""
local p = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', p .. 'node:leases', '-inf', now, 'WITHSCORES')
local claimed = {}
for i = 1, #lapsed, 2 do
  local node = lapsed[i]
  if node ~= ARGV[1] then
    redis.call('ZREM', p .. 'node:leases', node)
    redis.call('HDEL', p .. 'node:epochs', node)
    redis.call('HDEL', p .. 'nodes', node)
    redis.call('DEL', p .. 'inbox:' .. node)
    table.insert(claimed, node)
    table.insert(claimed, lapsed[i + 1])
  end
end
return claimed
"""
