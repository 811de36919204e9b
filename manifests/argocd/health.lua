-- Argo CD health check for video.scene-operator.io Project and Scene (one script, both kinds).
--   Progressing  not observed yet (status.observedGeneration != metadata.generation)
--   Healthy      Ready=True
--   Degraded     Stalled=True (failed, invalid spec, budget used up with work left, a clip
--                gone under repair.missingClip Ignore); also phase Failed or Ready reason
--                ClipMissing on statuses written before the Stalled condition existed
--   Progressing  Reconciling=True (planning, a job in flight, a slot awaited, retry scheduled)
--   Suspended    spec.paused (Paused=True on a Project, Ready reason Paused on a Scene)
--   Healthy      Ready reason VideosNotRequested (generateVideos is false: nothing to do)
--   Progressing  anything else (e.g. statuses written before Reconciling existed)
-- Installed through argocd-cm (see argocd-cm.yaml beside this file).
local hs = {}

local function condition(o, wanted)
  if o.status == nil or o.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(o.status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function nonempty(s)
  return type(s) == "string" and s ~= ""
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local status = obj.status or {}
local generation = (obj.metadata or {}).generation
local observed = status.observedGeneration
local ready = condition(obj, "Ready")
local stalled = condition(obj, "Stalled")
local current = observed ~= nil and generation ~= nil and observed == generation

if not current then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if is_true(ready) then
  hs.status = "Healthy"
  hs.message = nonempty(ready.message) and ready.message or "Ready"
  return hs
end

if is_true(stalled) or status.phase == "Failed" or (ready ~= nil and ready.reason == "ClipMissing") then
  hs.status = "Degraded"
  local err = status.lastError
  if is_true(stalled) and nonempty(stalled.message) then
    hs.message = stalled.reason .. ": " .. stalled.message
  elseif err ~= nil and nonempty(err.reason) then
    hs.message = err.reason .. (nonempty(err.message) and (": " .. err.message) or "")
  elseif ready ~= nil and nonempty(ready.message) then
    hs.message = ready.message
  else
    hs.message = "Failed"
  end
  return hs
end

local reconciling = condition(obj, "Reconciling")
if is_true(reconciling) then -- jobs already started finish even when paused
  hs.status = "Progressing"
  hs.message = nonempty(reconciling.message) and reconciling.message or reconciling.reason
  return hs
end

if is_true(condition(obj, "Paused")) or (ready ~= nil and ready.reason == "Paused") then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: no new jobs"
  return hs
end

if ready ~= nil and ready.reason == "VideosNotRequested" then
  hs.status = "Healthy"
  hs.message = nonempty(ready.message) and ready.message or "spec.generateVideos is false"
  return hs
end

hs.status = "Progressing"
if ready ~= nil and nonempty(ready.message) then
  hs.message = ready.message
elseif nonempty(status.phase) then
  hs.message = "Phase " .. status.phase
else
  hs.message = "Waiting for the operator"
end
return hs
