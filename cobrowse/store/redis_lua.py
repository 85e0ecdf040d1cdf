"""The Redis backend's scripts: every operation that must be atomic runs in one Lua script.

Keys are built inside the scripts from a prefix (ARGV[1]): the backend targets one Redis (or one
Sentinel-managed master), not Redis Cluster. Layout, under the prefix:

- `s:<sessionKey>`: a session (hash); the key is the customer's userToken;
- `t:<sessionToken>`: the live session holding a 9-digit token (a token is unique among them);
- `live`, `ended`: sorted sets of live sessions by deadline, of ended ones by end time;
- `p:<agentToken>`: an agent (hash); `sp:<sessionKey>`: a session's agents (sorted set);
- `l:<sessionKey>`: the live log, a stream whose entry IDs are `<seq>-1`;
- `r:<client>|<operation>`: a rate-limit window (hash, expiring).
"""

from __future__ import annotations

# Session fields, in the order scripts return them (HMGET).
SESSION_FIELDS = (
    "session_token",
    "user_token",
    "activation_time",
    "expires_at",
    "deactivation_time",
    "end_reason",
    "csrf_token",
    "screen_capture",
    "customer_id",
    "mode",
    "last_seq",
    "snapshot_seq",
    "user_data",
)
_FIELDS = ", ".join(f"'{name}'" for name in SESSION_FIELDS)

PRELUDE = f"""
local P = ARGV[1]
local FIELDS = {{{_FIELDS}}}
local function skey(k) return P .. 's:' .. k end
local function lkey(k) return P .. 'l:' .. k end
local function session(k) return redis.call('HMGET', skey(k), unpack(FIELDS)) end
local function is_live(k, now)
  local h = redis.call('HMGET', skey(k), 'deactivation_time', 'expires_at')
  return h[2] and not h[1] and tonumber(h[2]) > now
end
local function append(k, kind, audience, snapshot, head, tail, now)
  local seq = redis.call('HINCRBY', skey(k), 'last_seq', 1)
  local payload = head .. seq .. tail
  redis.call('XADD', lkey(k), seq .. '-1', 'k', kind, 'a', audience, 's', snapshot,
    't', now, 'p', payload)
  redis.call('HINCRBY', skey(k), 'log_bytes', #payload)
  return {{seq, kind, audience, payload, now, snapshot}}
end
-- drafts in ARGV from `first` on, five values each: kind, audience, snapshot, head, tail
local function append_all(k, first, count, now)
  local entries = {{}}
  for i = 0, count - 1 do
    local at = first + i * 5
    entries[#entries + 1] = append(k, ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3],
      ARGV[at + 4], now)
  end
  return entries
end
local function reset_mode(k, now, entries)
  if redis.call('HGET', skey(k), 'mode') == 'write' then
    redis.call('HSET', skey(k), 'mode', 'pointer')
    entries[#entries + 1] = append(k, 'mode', 'all', '0', '{{"type":"mode","seq":',
      ',"mode":"pointer","reason":"participants"}}', now)
  end
  return entries
end
-- Drop a just-ended session's live content, and append `ended` (delivered, then purged).
local function end_live(k, reason, ended_at, now)
  redis.call('HSET', skey(k), 'deactivation_time', ended_at, 'end_reason', reason,
    'log_bytes', 0, 'mode', 'pointer')
  redis.call('HDEL', skey(k), 'user_data')
  redis.call('ZREM', P .. 'live', k)
  redis.call('ZADD', P .. 'ended', ended_at, k)
  local token = redis.call('HGET', skey(k), 'session_token')
  if token and redis.call('GET', P .. 't:' .. token) == k then
    redis.call('DEL', P .. 't:' .. token)
  end
  for _, agent in ipairs(redis.call('ZRANGE', P .. 'sp:' .. k, 0, -1)) do
    local state = redis.call('HGET', P .. 'p:' .. agent, 'state')
    if state == 'pending' or state == 'accepted' then
      redis.call('HSET', P .. 'p:' .. agent, 'state', 'left', 'last_seen', now)
    end
  end
  redis.call('DEL', lkey(k))
  local entry = append(k, 'ended', 'all', '0', '{{"type":"ended","seq":',
    ',"reason":"' .. reason .. '"}}', now)
  redis.call('PEXPIRE', lkey(k), ARGV[2])
  return entry
end
"""

# ARGV: prefix, -, key, sessionToken, expires_at, then field/value pairs.
CREATE = """
local key, token = ARGV[3], ARGV[4]
if redis.call('EXISTS', skey(key)) == 1 then return 'user' end
if not redis.call('SET', P .. 't:' .. token, key, 'NX') then return 'token' end
redis.call('HSET', skey(key), unpack(ARGV, 6))
redis.call('ZADD', P .. 'live', ARGV[5], key)
return 'ok'
"""

# ARGV: prefix, -, sessionToken.
GET_LIVE = """
local key = redis.call('GET', P .. 't:' .. ARGV[3])
if not key then return false end
return session(key)
"""

# ARGV: prefix, ended log kept ms, key, now.
STOP = """
local key, now = ARGV[3], tonumber(ARGV[4])
local h = redis.call('HMGET', skey(key), 'expires_at', 'deactivation_time')
if not h[1] then return false end
if h[2] then return {0} end
local expires = tonumber(h[1])
local reason = 'stop'
if expires <= now then reason = 'timeout' end
return {1, end_live(key, reason, math.min(expires, now), now)}
"""

# ARGV: prefix, ended log kept ms, key, reason, now: end a live session (once).
END = """
local key, now = ARGV[3], tonumber(ARGV[5])
local h = redis.call('HMGET', skey(key), 'expires_at', 'deactivation_time')
if not h[1] or h[2] then return {} end
return {end_live(key, ARGV[4], math.min(tonumber(h[1]), now), now)}
"""

# ARGV: prefix, -, key, now, expires_at.
TOUCH = """
local key, now = ARGV[3], tonumber(ARGV[4])
if not is_live(key, now) then return false end
redis.call('HSET', skey(key), 'last_activity', now, 'expires_at', ARGV[5])
redis.call('ZADD', P .. 'live', ARGV[5], key)
return session(key)
"""

# ARGV: prefix, ended log kept ms, now, retention ms, batch.
SWEEP = """
local now, retention, batch = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ended = {}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', P .. 'live', '-inf', now, 'LIMIT', 0, batch)) do
  local expires = tonumber(redis.call('HGET', skey(key), 'expires_at')) or now
  ended[#ended + 1] = {key, end_live(key, 'timeout', expires, now)}
end
local old = redis.call('ZRANGEBYSCORE', P .. 'ended', '-inf', now - retention, 'LIMIT', 0, batch)
for _, key in ipairs(old) do
  for _, agent in ipairs(redis.call('ZRANGE', P .. 'sp:' .. key, 0, -1)) do
    redis.call('DEL', P .. 'p:' .. agent)
  end
  redis.call('DEL', skey(key), lkey(key), P .. 'sp:' .. key)
  redis.call('ZREM', P .. 'ended', key)
end
return {#old, ended}
"""

# ARGV: prefix, -, key, operation window ms, now, limit, quarantine ms (0: forever).
HIT = """
local key, window_ms, now = P .. 'r:' .. ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local limit, quarantine = tonumber(ARGV[6]), tonumber(ARGV[7])
local window = math.floor(now / window_ms)
local h = redis.call('HMGET', key, 'window', 'count', 'until')
local count, quarantined_until = 1, 0
if h[1] then
  if tonumber(h[1]) == window then count = tonumber(h[2]) + 1 end
  quarantined_until = tonumber(h[3])
end
local quarantined = quarantined_until == -1 or quarantined_until > now
if not quarantined and count > limit then
  if quarantine == 0 then quarantined_until = -1 else quarantined_until = now + quarantine end
  quarantined = true
end
redis.call('HSET', key, 'window', window, 'count', count, 'until', quarantined_until)
if quarantined_until == -1 then
  redis.call('PERSIST', key)
else
  -- Relative: the node's clock, not Redis's, decides windows and quarantines.
  redis.call('PEXPIRE', key, math.max((window + 1) * window_ms, quarantined_until) - now + 1000)
end
if quarantined then return {0, quarantined_until} end
return {1, 0}
"""

# ARGV: prefix, -, token, now.
RESOLVE = """
local token, now = ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', skey(token)) == 1 then
  return {'customer', session(token)}
end
local agent = redis.call('HMGET', P .. 'p:' .. token, 'session_key', 'user_id', 'name', 'state')
if not agent[1] or redis.call('EXISTS', skey(agent[1])) == 0 then return false end
return {'agent', session(agent[1]), agent}
"""

# ARGV: prefix, -, key.
PARTICIPANTS = """
local key = ARGV[3]
local customer = redis.call('HGET', skey(key), 'customer_id')
if not customer then return {} end
local agents = {}
for _, token in ipairs(redis.call('ZRANGE', P .. 'sp:' .. key, 0, -1)) do
  local agent = redis.call('HMGET', P .. 'p:' .. token, 'user_id', 'name', 'state')
  if agent[3] == 'pending' or agent[3] == 'accepted' then
    agents[#agents + 1] = {token, agent[1], agent[2], agent[3]}
  end
end
return {customer, agents}
"""

# ARGV: prefix, -, sessionToken, now, max agents, agent timeout ms, agent token, user id,
#       name, state, drafts count, then drafts.
JOIN = """
local now = tonumber(ARGV[4])
local key = redis.call('GET', P .. 't:' .. ARGV[3])
if not key or not is_live(key, now) then return false end
local holding = 0
for _, token in ipairs(redis.call('ZRANGE', P .. 'sp:' .. key, 0, -1)) do
  local agent = redis.call('HMGET', P .. 'p:' .. token, 'state', 'last_seen')
  if (agent[1] == 'pending' or agent[1] == 'accepted')
      and tonumber(agent[2]) > now - tonumber(ARGV[6]) then
    holding = holding + 1
  end
end
if holding >= tonumber(ARGV[5]) then return 'full' end
redis.call('HSET', P .. 'p:' .. ARGV[7], 'session_key', key, 'user_id', ARGV[8],
  'name', ARGV[9], 'state', ARGV[10], 'joined_at', now, 'last_seen', now)
redis.call('ZADD', P .. 'sp:' .. key, now, ARGV[7])
local before = session(key)
local entries = append_all(key, 12, tonumber(ARGV[11]), now)
if ARGV[10] == 'accepted' then reset_mode(key, now, entries) end
return {before, entries}
"""

# ARGV: prefix, -, key, now, drafts count, then drafts.
APPEND = """
local key, now = ARGV[3], tonumber(ARGV[4])
local h = redis.call('HMGET', skey(key), 'deactivation_time', 'expires_at')
if not h[2] or h[1] then return {} end
return append_all(key, 6, tonumber(ARGV[5]), now)
"""

# ARGV: prefix, -, key, now, cseq, max log bytes, then the batch draft and the
#       snapshot-request draft (five values each).
EVENTS = """
local key, now, cseq, max_log = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if not is_live(key, now) then return {'ended'} end
local h = redis.call('HMGET', skey(key), 'last_cseq', 'log_bytes', 'snapshot_requested')
local last_cseq, log_bytes, requested = tonumber(h[1]) or 0, tonumber(h[2]) or 0, h[3] == '1'
if cseq <= last_cseq then return {'duplicate'} end
local snapshot = ARGV[9] == '1'
if not snapshot and log_bytes > 2 * max_log then return {'full'} end
local entry = append(key, ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], now)
local entries = {entry}
if snapshot then
  local seq = entry[1]
  -- The log now starts at this snapshot: what it makes obsolete goes.
  for _, item in ipairs(redis.call('XRANGE', lkey(key), '-', '(' .. seq .. '-1')) do
    local fields = item[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'k' and (fields[i + 1] == 'events' or fields[i + 1] == 'pointer') then
        redis.call('XDEL', lkey(key), item[1])
      end
    end
  end
  redis.call('HSET', skey(key), 'snapshot_seq', seq, 'log_bytes', #entry[4],
    'snapshot_requested', 0)
  log_bytes, requested = #entry[4], false
else
  log_bytes = log_bytes + #entry[4]
end
redis.call('HSET', skey(key), 'last_cseq', cseq)
if log_bytes > max_log and not requested then
  entries[#entries + 1] = append(key, ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16], now)
  redis.call('HSET', skey(key), 'snapshot_requested', 1)
end
return {'stored', entries}
"""

# ARGV: prefix, -, key, now, agent user id, accept (1/0), drafts count, then drafts.
DECIDE = """
local key, now = ARGV[3], tonumber(ARGV[4])
if not is_live(key, now) then return false end
for _, token in ipairs(redis.call('ZRANGE', P .. 'sp:' .. key, 0, -1)) do
  local agent = redis.call('HMGET', P .. 'p:' .. token, 'user_id', 'state')
  if agent[1] == ARGV[5] and agent[2] == 'pending' then
    local state = 'declined'
    if ARGV[6] == '1' then state = 'accepted' end
    redis.call('HSET', P .. 'p:' .. token, 'state', state, 'last_seen', now)
    local entries = append_all(key, 8, tonumber(ARGV[7]), now)
    if ARGV[6] == '1' then reset_mode(key, now, entries) end
    return entries
  end
end
return false
"""

# ARGV: prefix, -, key, now, mode, then one draft.
MODE = """
local key, now = ARGV[3], tonumber(ARGV[4])
if not is_live(key, now) or redis.call('HGET', skey(key), 'mode') == ARGV[5] then return {} end
redis.call('HSET', skey(key), 'mode', ARGV[5])
return append_all(key, 6, 1, now)
"""

# ARGV: prefix, -, key, now, changes (JSON; null deletes), drafts count, then drafts.
USER_DATA = """
local key, now = ARGV[3], tonumber(ARGV[4])
if not is_live(key, now) then return {} end
local current = redis.call('HGET', skey(key), 'user_data')
local data = {}
if current then data = cjson.decode(current) end
for name, value in pairs(cjson.decode(ARGV[5])) do
  if value == cjson.null then data[name] = nil else data[name] = value end
end
if next(data) == nil then
  redis.call('HSET', skey(key), 'user_data', '{}')
else
  redis.call('HSET', skey(key), 'user_data', cjson.encode(data))
end
return append_all(key, 7, tonumber(ARGV[6]), now)
"""

# ARGV: prefix, -, agent token, now, drafts count, then drafts.
LEAVE = """
local token, now = ARGV[3], tonumber(ARGV[4])
local agent = redis.call('HMGET', P .. 'p:' .. token, 'session_key', 'state')
if not agent[1] or (agent[2] ~= 'pending' and agent[2] ~= 'accepted') then return {} end
redis.call('HSET', P .. 'p:' .. token, 'state', 'left', 'last_seen', now)
if redis.call('HEXISTS', skey(agent[1]), 'deactivation_time') == 1 then return {} end
local entries = append_all(agent[1], 6, tonumber(ARGV[5]), now)
return reset_mode(agent[1], now, entries)
"""

# ARGV: prefix, -, now, expires_at, customers count, customers..., agents...
HEARTBEAT = """
local now, expires, count = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
for i = 6, 5 + count do
  if is_live(ARGV[i], now) then
    redis.call('HSET', skey(ARGV[i]), 'last_activity', now, 'expires_at', expires)
    redis.call('ZADD', P .. 'live', expires, ARGV[i])
  end
end
for i = 6 + count, #ARGV do
  if redis.call('EXISTS', P .. 'p:' .. ARGV[i]) == 1 then
    redis.call('HSET', P .. 'p:' .. ARGV[i], 'last_seen', now)
  end
end
return 1
"""
