-- nvim-dap integration: the `orrery` adapter (`orrery dap` over stdio), launch/attach
-- configurations for Elixir, and step back / reverse continue on the current session.
local util = require('orrery.util')

local M = {}

local function orrery()
  return require('orrery')
end

--- The cookie the plugin is configured with (`cookie`, else the `cookie_file`'s
--- contents), or nil to let the adapter use ~/.erlang.cookie.
function M.cookie()
  local c = orrery().config
  if c.cookie then
    return c.cookie
  end
  if c.cookie_file then
    local f = io.open(vim.fn.expand(c.cookie_file), 'r')
    if f then
      local s = f:read('*a') or ''
      f:close()
      return (s:gsub('%s+$', ''))
    end
  end
  return nil
end

--- Fill in what the user left out from the plugin's settings, just before launch.
function M.enrich(config, on_config)
  local c = vim.deepcopy(config)
  local o = orrery().config
  if c.request == 'attach' and (c.node == nil or c.node == '') then
    c.node = o.node
  end
  if c.cookie == nil then
    c.cookie = M.cookie()
  end
  if c.cwd == nil then
    c.cwd = vim.fn.getcwd()
  end
  on_config(c)
end

--- The adapter definition nvim-dap reads (`dap.adapters.orrery`).
function M.adapter()
  return {
    type = 'executable',
    command = orrery().binary(),
    args = { 'dap' },
    enrich_config = M.enrich,
  }
end

--- The configurations nvim-dap offers for Elixir buffers.
function M.configurations()
  return {
    {
      type = 'orrery',
      request = 'launch',
      name = 'Orrery: run the mix app and record',
      cwd = '${workspaceFolder}',
      record = true,
      recordLimit = 100000,
    },
    {
      type = 'orrery',
      request = 'launch',
      name = 'Orrery: debug mix test',
      cwd = '${workspaceFolder}',
      task = 'test',
      taskArgs = {},
    },
    {
      type = 'orrery',
      request = 'attach',
      name = 'Orrery: attach to a running node',
      cwd = '${workspaceFolder}',
      node = function()
        local node = orrery().config.node
        if node and node ~= '' then
          return node
        end
        return vim.fn.input('Node (name@host): ')
      end,
      record = false,
    },
  }
end

--- Register with nvim-dap (`dap`, else `require('dap')` if installed). Idempotent:
--- earlier Orrery configurations are replaced, others kept. Returns true if registered.
function M.register(dap)
  if not dap then
    local ok, mod = pcall(require, 'dap')
    if not ok or type(mod) ~= 'table' then
      return false
    end
    dap = mod
  end
  dap.adapters = dap.adapters or {}
  dap.configurations = dap.configurations or {}
  dap.adapters.orrery = M.adapter()
  for _, ft in ipairs({ 'elixir' }) do
    local kept = {}
    for _, c in ipairs(dap.configurations[ft] or {}) do
      if c.type ~= 'orrery' then
        table.insert(kept, c)
      end
    end
    vim.list_extend(kept, M.configurations())
    dap.configurations[ft] = kept
  end
  return true
end

function M.setup()
  return M.register()
end

--- Send a request to the current nvim-dap session for the stopped thread.
local function session_request(command)
  local ok, dap = pcall(require, 'dap')
  if not ok or type(dap) ~= 'table' or not dap.session then
    util.error('nvim-dap is not installed')
    return false
  end
  local session = dap.session()
  if not session then
    util.error('no debug session (start one with nvim-dap)')
    return false
  end
  local thread = session.stopped_thread_id
  if not thread and type(session.threads) == 'table' then
    thread = next(session.threads)
  end
  if not thread then
    util.error(command .. ': no stopped thread')
    return false
  end
  session:request(command, { threadId = thread }, function(err)
    if err then
      util.error(command .. ': ' .. util.err_text(err))
    end
  end)
  return true
end

function M.step_back()
  return session_request('stepBack')
end

function M.reverse_continue()
  return session_request('reverseContinue')
end

return M
