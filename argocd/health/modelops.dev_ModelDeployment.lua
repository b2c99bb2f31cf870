-- Argo CD health of a modelops.dev/v1alpha1 ModelDeployment. Argo CD sets the global `obj` to
-- the resource and takes the returned table's status and message.
--   Healthy      the Ready condition is True for the current generation
--   Degraded     phase Failed (for the current generation)
--   Progressing  no status yet, a status about an older generation, Pending/Training/Deploying
-- This file is the source of truth: argocd/argocd-cm-patch.yaml carries a copy, and a test
-- (tests/deploy/test_argocd_health.py) fails when the two differ.
local hs = {}
local generation = obj.metadata.generation
local status = obj.status

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

hs.message = status.message or ""

local observed = status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  return hs
end

if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" and condition.status == "True"
        and condition.observedGeneration == generation then
      hs.status = "Healthy"
      return hs
    end
  end
end

-- Pending, Training, Deploying, or a Ready phase whose Ready condition is not yet current.
hs.status = "Progressing"
return hs
