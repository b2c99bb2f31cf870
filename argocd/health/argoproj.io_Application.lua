-- Argo CD health of an Argo CD Application: its own reported health. Argo CD stopped assessing
-- child Applications by default (1.8); without this an app of apps does not wait for one sync
-- wave's Applications to be healthy before the next (argocd/apps: platform, then models).
local hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
