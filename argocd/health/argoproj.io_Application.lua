-- Argo CD health of an Argo CD Application, so that an app of apps (argocd/root.yaml) waits for
-- one sync wave's Applications before it applies the next: the platform, then the models.
-- Argo CD stopped assessing child Applications itself in 1.8.
--   Degraded     its own health is Degraded
--   Healthy      its own health is Healthy, it is Synced with git, and no sync is running
--   Progressing  otherwise: not assessed yet, not synced yet, syncing, or its resources progressing
-- Its own health alone is not enough: it can read Healthy before its first sync applied anything.
local hs = {}
hs.status = "Progressing"
hs.message = ""
local status = obj.status
if status == nil or status.health == nil then
  hs.message = "Waiting for Argo CD to assess the Application"
  return hs
end
if status.health.message ~= nil then
  hs.message = status.health.message
end
if status.health.status == "Degraded" then
  hs.status = "Degraded"
  return hs
end
local synced = status.sync ~= nil and status.sync.status == "Synced"
local syncing = status.operationState ~= nil and status.operationState.phase == "Running"
if status.health.status == "Healthy" and synced and not syncing then
  hs.status = "Healthy"
  return hs
end
if not synced or syncing then
  hs.message = "Waiting for the Application to sync"
end
return hs
