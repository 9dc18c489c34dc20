-- One event.
-- KEYS: the event's key (ARGV[1] .. ARGV[2])
-- ARGV: event key prefix, event id, payment key prefix (see fe_find)
-- Returns {form, document, tenant} (form: see fe_form), or {} when there is no such event.
local doc, tenant, derived = fe_find(ARGV[1], ARGV[2], ARGV[3])
if not doc or not tenant then return {} end
return {fe_form(derived), doc, tenant}
