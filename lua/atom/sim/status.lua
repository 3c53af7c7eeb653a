-- metav1.Status error values. A status error is a plain table shaped exactly like the Status body
-- the API returns; callers own it and may add fields (for example `headers`) before sending.
local M = {}

local REASONS = {
  [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Expired",
  [413] = "RequestEntityTooLarge", [415] = "UnsupportedMediaType", [422] = "Invalid",
  [429] = "TooManyRequests", [500] = "InternalError", [503] = "ServiceUnavailable",
  [504] = "Timeout",
}
M.REASONS = REASONS

function M.new(code, message, reason, details)
  return {
    kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
    message = message, reason = reason or REASONS[code] or "Unknown", details = details,
    code = code,
  }
end

function M.is(v)
  return type(v) == "table" and v.kind == "Status" and v.status == "Failure"
end

-- `info` is a registry entry (or nil); qualified resource name as kube prints it.
local function qualified(info, resource)
  if not info then return resource or "" end
  if info.group == "" then return info.resource end
  return info.resource .. "." .. info.group
end
M.qualified = qualified

local function details(info, name)
  return { name = name, group = info and info.group or nil, kind = info and info.resource or nil }
end

function M.not_found(info, name)
  return M.new(404, string.format('%s "%s" not found', qualified(info), name), "NotFound",
    details(info, name))
end

function M.namespace_not_found(ns)
  return M.new(404, string.format('namespaces "%s" not found', ns), "NotFound",
    { name = ns, kind = "namespaces" })
end

function M.already_exists(info, name)
  return M.new(409, string.format('%s "%s" already exists', qualified(info), name),
    "AlreadyExists", details(info, name))
end

function M.conflict(info, name, why)
  return M.new(409, string.format(
    'Operation cannot be fulfilled on %s "%s": %s', qualified(info), name,
    why or "the object has been modified; please apply your changes to the latest version and try again"),
    "Conflict", details(info, name))
end

-- causes: array of { reason = "FieldValueInvalid", message = "...", field = "spec.x" }
function M.invalid(info, name, causes)
  local kind = info and info.kind or "Object"
  local gk = kind
  if info and info.group ~= "" then gk = kind .. "." .. info.group end
  local parts = {}
  for i, c in ipairs(causes) do parts[i] = c.field .. ": " .. c.message end
  local msg
  if #parts == 1 then
    msg = string.format('%s "%s" is invalid: %s', gk, name or "", parts[1])
  else
    msg = string.format('%s "%s" is invalid: [%s]', gk, name or "", table.concat(parts, ", "))
  end
  return M.new(422, msg, "Invalid",
    { name = name, group = info and info.group or nil, kind = kind, causes = causes })
end

function M.cause(reason, field, message)
  return { reason = reason, field = field, message = message }
end

function M.bad_request(msg) return M.new(400, msg, "BadRequest") end
function M.forbidden(msg) return M.new(403, msg, "Forbidden") end
function M.method_not_allowed(msg) return M.new(405, msg or "the server does not allow this method on the requested resource", "MethodNotAllowed") end
function M.expired(msg) return M.new(410, msg, "Expired") end
function M.too_large(msg) return M.new(413, msg or "Request entity too large: limit is 3145728", "RequestEntityTooLarge") end
function M.unsupported_media(ct)
  return M.new(415, string.format('the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got %q)', ct or ""), "UnsupportedMediaType")
end
function M.internal(msg) return M.new(500, "Internal error occurred: " .. tostring(msg), "InternalError") end
function M.path_not_found()
  return M.new(404, "the server could not find the requested resource", "NotFound", { causes = { { reason = "UnexpectedServerResponse", message = "404 page not found" } } })
end

return M
