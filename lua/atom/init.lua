-- atom: the module release scripts `require "atom"`.
--
-- Every release script gets its own instance, bound to the script's folder, made by
-- atom.new{ dir =, allow_read_outside =, log = } (the loader does this; plain lua5.4 users
-- get an instance bound to the current directory when they `require "atom"`).
--
--   atom.yaml(pattern_or_path, values) -> list of objects
--       YAML files or globs, relative to the script's folder, every document of each file,
--       in file-name order. `values` (optional) fills `${name}` / `${a.b}` placeholders in
--       the text before it is parsed; a placeholder without a value is an error naming
--       file:line. `$${` writes a literal `${`. kind: List documents are expanded.
--   atom.json.encode(v) / atom.json.decode(s)    lua-cjson
--   atom.log(...)           a log line (print does the same in scripts)
--   atom.env(name, default) an environment variable (e.g. an image tag set by CI)
--   atom.array(t)           marks t as a JSON array even when empty
--   atom.dir, atom.script   the release folder and script path
--
-- atom.new returns the instance and a control table for the loader: control.source_of(obj)
-- -> "file:line" (kept in a weak table) and control.invalid() -> the first invalid-input
-- error atom.yaml raised, so the loader can report "file:line: what" rather than a
-- traceback. Nothing here touches a cluster.
local core = require "atom.core"
local cjson = require "cjson"
local read_file = require("atom.release.util").read_file

local M = {}

local function json_module()
  local ok, json = pcall(require, "atom.json")
  if ok and type(json) == "table" and json.encode and json.decode then return json end
  return { encode = cjson.encode, decode = cjson.decode, null = cjson.null }
end

-- Collapses "." and ".." so a path can be compared with the release folder.
function M.normalize(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts > 0 and parts[#parts] ~= ".." then
        parts[#parts] = nil
      elseif not absolute then
        parts[#parts + 1] = ".."
      end
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  local joined = table.concat(parts, "/")
  if absolute then return "/" .. joined end
  return joined == "" and "." or joined
end

function M.join(dir, path)
  if path:sub(1, 1) == "/" or dir == nil or dir == "" or dir == "." then return M.normalize(path) end
  return M.normalize(dir .. "/" .. path)
end

-- True when path (already normalized) lies inside dir (normalized).
function M.inside(dir, path)
  dir = M.normalize(dir)
  if dir == "." then return path:sub(1, 1) ~= "/" and path ~= ".." and path:sub(1, 3) ~= "../" end
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

local function line_of(text, pos)
  local n = 1
  for _ in text:sub(1, pos - 1):gmatch("\n") do n = n + 1 end
  return n
end

local function lookup(values, name)
  local v = values
  for part in name:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

-- ${name} substitution; plain text, so the value lands exactly where the placeholder was.
local function substitute(text, values, file)
  local out, pos = {}, 1
  while true do
    local s, e, escaped, name = text:find("(%$?)%${([^}]*)}", pos)
    if not s then break end
    out[#out + 1] = text:sub(pos, s - 1)
    if escaped == "$" then
      out[#out + 1] = "${" .. name .. "}"
    else
      local key = name:match("^%s*([%w_.-]+)%s*$")
      local v = key and lookup(values, key)
      local tv = type(v)
      if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
        local why = v == nil and "has no value" or ("is a " .. tv .. ", not a string, number or boolean")
        error(string.format("%s:%d: placeholder ${%s} %s", file, line_of(text, s), name, why), 0)
      end
      out[#out + 1] = tostring(v)
    end
    pos = e + 1
  end
  out[#out + 1] = text:sub(pos)
  return table.concat(out)
end

function M.new(opts)
  opts = opts or {}
  local dir = M.normalize(opts.dir or ".")
  local sources = setmetatable({}, { __mode = "k" })
  local atom = {
    dir = dir,
    script = opts.script,
    json = json_module(),
    null = cjson.null,
  }

  -- Raises an input error the loader reports as "file:line: what" (no traceback).
  local first_invalid
  local function invalid(message)
    first_invalid = first_invalid or message
    error(message, 0)
  end

  local function record(obj, file, line, docno)
    if type(obj) == "table" then sources[obj] = { file = file, line = line, doc = docno } end
  end

  function atom.source_of(obj)
    local s = sources[obj]
    if s then return s.file .. ":" .. s.line, s end
    return nil
  end

  function atom.log(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    local line = table.concat(parts, "\t", 1, parts.n)
    if opts.log then opts.log(line) else io.stderr:write(line, "\n") end
  end

  function atom.env(name, default)
    if type(name) ~= "string" then error("atom.env: name must be a string", 2) end
    local v = os.getenv(name)
    if v == nil then return default end
    return v
  end

  function atom.array(t)
    if t ~= nil and type(t) ~= "table" then error("atom.array: want a table, got " .. type(t), 2) end
    return setmetatable(t or {}, core.array_mt)
  end

  function atom.yaml(pattern, values)
    local where = opts.script or "atom.yaml"
    local info = debug and debug.getinfo and debug.getinfo(2, "Sl")
    if info and info.currentline and info.currentline > 0 then
      where = info.short_src .. ":" .. info.currentline
    end
    if type(pattern) ~= "string" then
      invalid(string.format("%s: atom.yaml wants a file name or glob, got %s", where, type(pattern)))
    end
    if values ~= nil and type(values) ~= "table" then
      invalid(string.format("%s: atom.yaml values must be a table, got %s", where, type(values)))
    end
    local full = M.join(dir, pattern)
    if not opts.allow_read_outside and not M.inside(dir, full) then
      invalid(string.format("%s: atom.yaml(%q) reads outside the release folder %s (run with --allow-read-outside to allow it)",
        where, pattern, dir))
    end
    local files
    if full:find("[*?%[]") then
      files = core.glob(full) or {}
      table.sort(files)
      if #files == 0 then invalid(string.format("%s: atom.yaml(%q) matches no files", where, pattern)) end
    else
      files = { full }
    end
    local out = setmetatable({}, core.array_mt)
    for _, file in ipairs(files) do
      local text, err = read_file(file)
      if not text then invalid(string.format("%s: atom.yaml cannot read %s", where, err)) end
      if values then
        local ok, filled = pcall(substitute, text, values, file)
        if not ok then invalid(filled) end
        text = filled
      end
      -- Errors the decoder raises (a key that is not a string, nesting too deep) are bad
      -- input as much as the ones it returns.
      local ok, docs, lines = pcall(core.yaml_decode, text, file)
      if not ok then invalid(docs) end
      if not docs then invalid(lines) end
      for i, doc in ipairs(docs) do
        local line = lines[i] or 1
        if type(doc) ~= "table" then
          invalid(string.format("%s:%d: document %d is a %s, not an object", file, line, i,
            doc == cjson.null and "null" or type(doc)))
        end
        if type(doc.kind) == "string" and doc.kind:match("List$") and type(doc.items) == "table" then
          for _, item in ipairs(doc.items) do
            record(item, file, line, i)
            out[#out + 1] = item
          end
        else
          record(doc, file, line, i)
          out[#out + 1] = doc
        end
      end
    end
    return out
  end

  -- What the loader reads back, out of the script's reach (it can change `atom`'s fields).
  local control = {
    source_of = atom.source_of,
    invalid = function() return first_invalid end,
  }
  -- Also kept in the instance's metatable, which scripts cannot read (the sandbox shows
  -- them only metatables they set), for callers that wrap atom.new and keep one result.
  return setmetatable(atom, { control = control }), control
end

-- The control table of an instance made by atom.new.
function M.control_of(instance)
  local mt = getmetatable(instance)
  return type(mt) == "table" and mt.control or nil
end

-- `require "atom"` outside a release script: an instance bound to the current directory.
local default = (M.new{ dir = "." })
default.new = M.new
default.normalize, default.join, default.inside = M.normalize, M.join, M.inside
default.control_of = M.control_of
-- Embedding (issue #7): plain lua5.4 drives releases with the same entry points as
-- libatom (atom.api). Only this default instance has them; scripts' instances do not.
for _, fn in ipairs({ "load", "load_string", "run", "resume", "status", "history", "cancel", "rollback" }) do
  default[fn] = function(...) return require("atom.api")[fn](...) end
end
return default
