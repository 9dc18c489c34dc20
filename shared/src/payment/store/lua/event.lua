-- One event, written in full or lazy (see fe_read).
-- KEYS: the event
-- Returns {json, tenant}, or {} when there is no such event.
local json, tenant = fe_read(KEYS[1])
if not json or not tenant then return {} end
return {json, tenant}
