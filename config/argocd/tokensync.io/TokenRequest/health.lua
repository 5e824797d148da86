-- Health of a tokensync.io TokenRequest or ClusterTokenRequest (the same
-- script for both kinds), read from the status contract in tokensync's README
-- ("Conditions and what to do"). The status follows kstatus (Ready, Stalled,
-- Reconciling, observedGeneration on the status and on each condition).
--
-- Argo CD runs argocd-cm scripts without Lua's standard libraries unless
-- useOpenLibs is set: there is no string library here, and os (time and date
-- only) only through require.
local os = require("os")

local hs = {}
local generation = obj.metadata.generation
local status = obj.status or {}

local function find(conditionType)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

-- A condition counts only if it was written for the spec Argo CD sees.
local function current(c)
  return c ~= nil and (generation == nil or c.observedGeneration == nil or c.observedGeneration == generation)
end

local function describe(c)
  if c.message == nil or c.message == "" then
    return c.reason or ""
  end
  return (c.reason or "") .. ": " .. c.message
end

-- status.expiresAt is a metav1.Time, always written as the 20 characters
-- YYYY-MM-DDTHH:MM:SSZ (UTC): comparing it as a string with now in the same
-- form compares the times, with no library to parse it.
local function expired()
  local expiresAt = status.expiresAt
  if type(expiresAt) ~= "string" or #expiresAt ~= 20 then
    return true
  end
  return expiresAt <= os.date("!%Y-%m-%dT%H:%M:%SZ")
end

local ready = find("Ready")

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  if current(ready) and ready.reason == "Suspended" and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  else
    hs.message = "spec.suspend is true: tokensync neither logs in nor writes the Secret"
  end
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first login"
  return hs
end

if generation ~= nil and (status.observedGeneration ~= generation or not current(ready)) then
  hs.status = "Progressing"
  hs.message = "Waiting for tokensync to act on generation " .. generation
  return hs
end

local stalled = find("Stalled")
if current(stalled) and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready.status == "True" then
  if status.expiresAt ~= nil and expired() then
    -- tokensync refreshes before expiry or says why not: a token past its
    -- expiry with Ready still True means nobody is refreshing it.
    hs.status = "Degraded"
    hs.message = "the token expired at " .. status.expiresAt .. " and Ready is still True: is tokensync running?"
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

if ready.status == "False" and expired() then
  hs.status = "Degraded"
  if status.expiresAt ~= nil then
    hs.message = "the token expired at " .. status.expiresAt .. "; " .. describe(ready)
  else
    hs.message = describe(ready)
  end
  return hs
end

-- Ready False while the previous token is still valid: a refresh is retried
-- (ProviderUnavailable, RequestBlocked, InvalidResponse, ...: the reasons that
-- do not stall), Progressing; once the token expired, Degraded (above).
hs.status = "Progressing"
hs.message = describe(ready)
return hs
