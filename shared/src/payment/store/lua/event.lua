-- One event.
-- KEYS: the event
-- Returns {form, document, tenant} (form: see list.lua), or {} when there is no such event.
local doc, tenant, derived = fe_read(KEYS[1])
if not doc or not tenant then return {} end
return {derived and 'p' or 'd', doc, tenant}
