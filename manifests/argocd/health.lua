-- Argo CD health check for video.scene-operator.io Project and Scene (one script, both kinds).
--   Healthy      Ready=True and status.observedGeneration == metadata.generation
--   Degraded     status.phase == "Failed", or Ready=False with reason ClipMissing
--                (drift found a clip gone and repair.missingClip is Ignore)
--   Progressing  anything else (not observed yet, planning, generating, retry scheduled)
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

local status = obj.status or {}
local generation = (obj.metadata or {}).generation
local observed = status.observedGeneration
local ready = condition(obj, "Ready")
local current = observed ~= nil and generation ~= nil and observed == generation

if ready ~= nil and ready.status == "True" and current then
  hs.status = "Healthy"
  hs.message = nonempty(ready.message) and ready.message or "Ready"
  return hs
end

if status.phase == "Failed" or (ready ~= nil and ready.reason == "ClipMissing") then
  hs.status = "Degraded"
  local err = status.lastError
  if err ~= nil and nonempty(err.reason) then
    hs.message = err.reason .. (nonempty(err.message) and (": " .. err.message) or "")
  elseif ready ~= nil and nonempty(ready.message) then
    hs.message = ready.message
  else
    hs.message = "Failed"
  end
  return hs
end

hs.status = "Progressing"
if not current then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
elseif ready ~= nil and nonempty(ready.message) then
  hs.message = ready.message
elseif nonempty(status.phase) then
  hs.message = "Phase " .. status.phase
else
  hs.message = "Waiting for the operator"
end
return hs
