-- Any new value of tokensync.io/force-refresh makes tokensync log in once.
-- The current time (to the second) is new unless the action ran within the
-- same second, when the login it asked for is already under way.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["tokensync.io/force-refresh"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
