-- nvim-dap integration: the `orrery` adapter (`orrery dap` over stdio), launch/attach
-- configurations for Elixir, "Debug test" lenses, and step back / reverse continue on the
-- current session.
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

-- "Debug test" lenses in ExUnit files (`*_test.exs`): the server's lenses carry the
-- client-side command `orrery.debugTest` with a complete launch configuration
-- (`mix test file:line` under `orrery dap`).

M.DEBUG_TEST = 'orrery.debugTest'

--- Start a "Debug test" launch configuration with nvim-dap. Returns true if started;
--- without nvim-dap (or without a configuration) says what to do and returns false.
function M.debug_test(config)
  if type(config) ~= 'table' or config.type ~= 'orrery' then
    vim.notify('Orrery: "Debug test" needs the launch configuration of a test lens: put the cursor in a test of a '
      .. '*_test.exs file and run :OrreryDebugTest', vim.log.levels.WARN)
    return false
  end
  local ok, dap = pcall(require, 'dap')
  if not ok or type(dap) ~= 'table' or type(dap.run) ~= 'function' then
    vim.notify('Orrery: "Debug test" runs the test under nvim-dap, which is not installed: install '
      .. 'mfussenegger/nvim-dap (then restart, or call require("orrery.dap").register()). Without it, run '
      .. '`orrery dap` with this configuration from another DAP client: ' .. vim.fn.json_encode(config),
      vim.log.levels.WARN)
    return false
  end
  if type(dap.adapters) ~= 'table' or dap.adapters.orrery == nil then
    -- nvim-dap loaded after setup(), or setup({ dap = false }).
    M.register(dap)
  end
  dap.run(vim.deepcopy(config))
  return true
end

--- Of LSP code lenses, the "Debug test" one closest at or above the 0-based `line` (the
--- test, else its describe, else the whole file), or nil.
function M.nearest_test_lens(lenses, line)
  if type(lenses) ~= 'table' then
    return nil -- no lenses: nil or vim.NIL (JSON null)
  end
  local best
  for _, l in ipairs(lenses) do
    local c = l.command
    local at = l.range and l.range.start and l.range.start.line
    if type(c) == 'table' and c.command == M.DEBUG_TEST and type(at) == 'number' and at <= line
      and (not best or at > best.range.start.line) then
      best = l
    end
  end
  return best
end

--- :OrreryDebugTest: ask the Orrery server for the buffer's lenses and debug the test at
--- (or above) the cursor. `cb(config)` gets what was started (nil if nothing was).
function M.debug_test_at_cursor(cb)
  local done = cb or function() end
  local bufnr = vim.api.nvim_get_current_buf()
  local line = vim.api.nvim_win_get_cursor(0)[1] - 1
  local client = util.clients({ name = 'orrery', bufnr = bufnr })[1]
  if not client or util.is_stopped(client) then
    util.error('no Orrery server for this buffer: open a *_test.exs file of the mix project '
      .. '(after require("orrery").setup())')
    return done(nil)
  end
  local params = { textDocument = vim.lsp.util.make_text_document_params(bufnr) }
  util.request(client, 'textDocument/codeLens', params, function(err, result)
    if err then
      util.error('textDocument/codeLens: ' .. util.err_text(err))
      return done(nil)
    end
    local lens = M.nearest_test_lens(result, line)
    if not lens then
      util.error('no test at or above the cursor ("Debug test" works in *_test.exs files of the mix project)')
      return done(nil)
    end
    local config = lens.command.arguments and lens.command.arguments[1]
    done(M.debug_test(config) and config or nil)
  end, bufnr)
end

function M.step_back()
  return session_request('stepBack')
end

function M.reverse_continue()
  return session_request('reverseContinue')
end

return M
