-- refresh: log in once now. Disabled while spec.suspend is true, when
-- tokensync would hold the refresh back until the TokenRequest is resumed.
local actions = {}
actions["refresh"] = {
  ["iconClass"] = "fa fa-fw fa-sync",
  ["displayName"] = "Refresh token",
  ["disabled"] = obj.spec ~= nil and obj.spec.suspend == true
}
return actions
