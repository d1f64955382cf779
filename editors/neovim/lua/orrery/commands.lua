-- User commands and the views they open: :OrreryAttach, :OrreryStatus, :OrreryRollback,
-- :OrreryInspect, :OrreryProcesses, :OrreryStepBack, :OrreryReverseContinue,
-- :OrreryDebugTest, :OrreryTimeline, :OrreryStateHistory, :OrreryValueHistory; and the
-- client-side lens commands.
local util = require('orrery.util')

local M = {}

--- The Orrery client serving `bufnr` (else any Orrery client).
function M.client(bufnr)
  local cs = util.clients({ name = 'orrery', bufnr = bufnr or vim.api.nvim_get_current_buf() })
  if #cs == 0 then
    cs = util.clients({ name = 'orrery' })
  end
  return cs[1]
end

--- Send an Orrery request; `cb(result)` on success, the server's error echoed otherwise
--- (and passed to `cb(nil, err)` when given).
function M.request(method, params, cb)
  local client = M.client()
  if not client then
    local msg = 'no Orrery server is running: open an Elixir file (after require("orrery").setup())'
    util.error(msg)
    if cb then
      cb(nil, { message = msg })
    end
    return
  end
  util.request(client, method, params, function(err, result)
    if err then
      util.error(util.err_text(err))
      if cb then
        cb(nil, err)
      end
      return
    end
    if cb then
      cb(result)
    end
  end)
end

--- One line per node: "attached to kv@host (OTP 26, Elixir 1.14.0, agent v1)".
function M.format_status(st)
  if not st.attached then
    local reason = st.reason
    if type(reason) ~= 'string' and type(st.status) == 'table' then
      reason = st.status.reason or st.status.state
    end
    return { 'Orrery: not attached' .. (type(reason) == 'string' and (' (' .. reason .. ')') or '') }
  end
  local lines = {}
  for i, n in ipairs(st.nodes or {}) do
    local parts = {}
    if n.otp and n.otp ~= vim.NIL then
      table.insert(parts, 'OTP ' .. tostring(n.otp))
    end
    if n.elixir and n.elixir ~= vim.NIL then
      table.insert(parts, 'Elixir ' .. tostring(n.elixir))
    end
    if n.agent == true then
      table.insert(parts, 'agent loaded')
    elseif n.agent == false then
      table.insert(parts, 'no agent')
    elseif type(n.agent) == 'string' then
      table.insert(parts, 'agent ' .. n.agent)
    end
    local head = i == 1 and 'Orrery: attached to ' or '        peer '
    table.insert(lines, head .. tostring(n.name) .. ' (' .. table.concat(parts, ', ') .. ')')
  end
  if #lines == 0 then
    table.insert(lines, 'Orrery: attached to ' .. tostring(st.node))
  end
  local extra = {}
  if type(st.mode) == 'string' then
    table.insert(extra, 'mode ' .. st.mode)
  end
  if st.allowWrites ~= nil and st.allowWrites ~= vim.NIL then
    table.insert(extra, st.allowWrites and 'writes allowed' or 'read-only')
  end
  if #extra > 0 then
    lines[1] = lines[1] .. ' · ' .. table.concat(extra, ', ')
  end
  return lines
end

function M.status(cb)
  M.request('orrery/status', nil, function(st, err)
    if st then
      for _, l in ipairs(M.format_status(st)) do
        util.echo(l)
      end
    end
    if cb then
      cb(st, err)
    end
  end)
end

--- Attach to another node (nil: prompt; '' or false: back to the embedded default) by
--- restarting the server with the new settings.
function M.attach(node, cb)
  local orrery = require('orrery')
  local function go(n)
    if n == nil then
      return
    end
    if n == '' or n == false then
      orrery.config.node = nil
      util.echo('Orrery: starting the workspace app (embedded default)…')
    else
      orrery.config.node = n
      util.echo('Orrery: attaching to ' .. n .. '…')
    end
    orrery.restart(cb)
  end
  if node == nil then
    vim.ui.input({ prompt = 'Attach to node (name@host): ', default = orrery.config.node or '' }, function(input)
      if input and input ~= '' then
        go(input)
      end
    end)
  else
    go(node)
  end
end

--- The module under the cursor (an alias such as `KV.Bucket`), else the enclosing
--- `defmodule`.
function M.module_at_cursor()
  local line = vim.api.nvim_get_current_line()
  local col = vim.api.nvim_win_get_cursor(0)[2] + 1
  local s = 1
  while true do
    local a, b = line:find('[%u][%w_]*[%.%w_]*', s)
    if not a then
      break
    end
    if col >= a and col <= b then
      return (line:sub(a, b):gsub('%.$', ''))
    end
    s = b + 1
  end
  local row = vim.api.nvim_win_get_cursor(0)[1]
  for l = row, 1, -1 do
    local text = vim.api.nvim_buf_get_lines(0, l - 1, l, false)[1] or ''
    local m = text:match('^%s*defmodule%s+([%w_%.]+)')
    if m then
      return m
    end
  end
  return nil
end

local function text_lines(s)
  return vim.split(tostring(s), '\n', { plain = true })
end

--- Live state of a process or module's registered process, in a scratch buffer.
function M.inspect(target, cb)
  if target == nil or target == '' then
    target = M.module_at_cursor()
  end
  if not target then
    util.error('no module under the cursor: :OrreryInspect Module.Name')
    return
  end
  M.request('orrery/state', { target = target }, function(res, err)
    if res then
      M.show_state(target, res)
    end
    if cb then
      cb(res, err)
    end
  end)
end

function M.show_state(target, res)
  local lines = {}
  for _, p in ipairs(res.processes or {}) do
    local head = string.format(
      '# %s on %s · %s · queue %s · %s · %s reductions',
      target,
      tostring(p.node),
      tostring(p.pid),
      tostring(p.messageQueueLen),
      util.bytes(p.memory),
      tostring(p.reductions)
    )
    table.insert(lines, head)
    if p.state == nil or p.state == vim.NIL then
      table.insert(lines, '# (state not available)')
    else
      vim.list_extend(lines, text_lines(p.state))
    end
    table.insert(lines, '')
  end
  return util.scratch('orrery://state/' .. target, lines, 'elixir')
end

--- Processes by memory (or `reductions`, `queue`), in a scratch buffer.
function M.processes(sort, cb)
  sort = (sort and sort ~= '') and sort or 'memory'
  M.request('orrery/processes', { sort = sort, offset = 0, limit = 100 }, function(res, err)
    if res then
      M.show_processes(sort, res)
    end
    if cb then
      cb(res, err)
    end
  end)
end

local function cell(v)
  if v == nil or v == vim.NIL then
    return '-'
  end
  return tostring(v)
end

function M.show_processes(sort, res)
  local lines = {}
  local fmt = '%-16s %-28s %-24s %10s %12s %6s  %s'
  for _, n in ipairs(res.nodes or {}) do
    table.insert(lines, string.format('%s · %s processes · by %s', n.node, cell(n.total), sort))
    table.insert(lines, string.format(fmt, 'PID', 'NAME', 'MODULE', 'MEMORY', 'REDUCTIONS', 'QUEUE', 'CURRENT'))
    for _, p in ipairs(n.items or {}) do
      table.insert(
        lines,
        string.format(
          fmt,
          cell(p.pid),
          cell(p.name),
          cell(p.module),
          util.bytes(p.memory),
          cell(p.reductions),
          cell(p.messageQueueLen),
          cell(p.currentFunction)
        )
      )
    end
    table.insert(lines, '')
  end
  return util.scratch('orrery://processes', lines, nil)
end

--- Roll back the last hot swap of `module` (default: the module under the cursor).
--- Echoes the server's answer, or its error (e.g. while it does not offer the command).
function M.rollback(module, cb)
  if module == nil or module == '' then
    module = M.module_at_cursor()
  end
  local args = {}
  if module then
    args = { module }
  end
  M.request('workspace/executeCommand', { command = 'orrery.rollback', arguments = args }, function(res, err)
    if not err then
      local msg = type(res) == 'table' and (res.message or vim.inspect(res)) or tostring(res)
      util.echo('Orrery: rollback: ' .. msg)
    end
    if cb then
      cb(res, err)
    end
  end)
end

-- Lens "Inspect state" (command orrery.inspectState, argument the module name).
local function inspect_lens(command)
  local arg = command.arguments and command.arguments[1]
  if type(arg) == 'table' then
    arg = arg.target
  end
  M.inspect(arg)
end

function M.create()
  local cmd = vim.api.nvim_create_user_command
  cmd('OrreryAttach', function(o)
    if o.bang then
      M.attach('')
    else
      M.attach(o.args ~= '' and o.args or nil)
    end
  end, { nargs = '?', bang = true, desc = 'Orrery: attach to a node (name@host); ! for the embedded default' })
  cmd('OrreryHover', function()
    require('orrery.beside').hover()
  end, { nargs = 0, desc = "Orrery: every server's hover in one float, Orrery's live one last" })
  cmd('OrreryStatus', function()
    M.status()
  end, { nargs = 0, desc = 'Orrery: node, OTP and Elixir versions' })
  cmd('OrreryRollback', function(o)
    M.rollback(o.args)
  end, { nargs = '?', desc = 'Orrery: roll back the last hot swap' })
  cmd('OrreryInspect', function(o)
    M.inspect(o.args)
  end, { nargs = '?', desc = 'Orrery: live state of a module or process' })
  cmd('OrreryProcesses', function(o)
    M.processes(o.args)
  end, {
    nargs = '?',
    complete = function()
      return { 'memory', 'reductions', 'queue' }
    end,
    desc = 'Orrery: processes by memory, reductions or queue',
  })
  cmd('OrreryStepBack', function()
    require('orrery.dap').step_back()
  end, { nargs = 0, desc = 'Orrery: step back (nvim-dap session)' })
  cmd('OrreryReverseContinue', function()
    require('orrery.dap').reverse_continue()
  end, { nargs = 0, desc = 'Orrery: continue backwards (nvim-dap session)' })
  cmd('OrreryTimeline', function(o)
    require('orrery.history').timeline(o.args)
  end, { nargs = '?', desc = 'Orrery: recorded lines and returns of a module (* for all) in the nvim-dap session' })
  cmd('OrreryStateHistory', function(o)
    require('orrery.history').state_history(o.args)
  end, { nargs = '?', desc = "Orrery: a GenServer's callbacks and states in the nvim-dap session's recording" })
  cmd('OrreryValueHistory', function(o)
    require('orrery.history').value_history(o.args)
  end, { nargs = '?', desc = "Orrery: every value of a variable in the nvim-dap session's recording" })
  cmd('OrreryDebugTest', function()
    require('orrery.dap').debug_test_at_cursor()
  end, { nargs = 0, desc = 'Orrery: debug the test at (or above) the cursor with nvim-dap' })
  vim.lsp.commands['orrery.inspectState'] = inspect_lens
  -- Lenses "Debug test" / "Debug describe" / "Debug tests in file" (client-side command,
  -- argument a launch configuration), run with vim.lsp.codelens.run().
  vim.lsp.commands['orrery.debugTest'] = function(command)
    require('orrery.dap').debug_test(command.arguments and command.arguments[1])
  end
end

return M
