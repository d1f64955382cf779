-- Headless test of the Orrery Neovim plugin against a real node (started by test.sh).
-- Run: nvim --headless --clean -u NONE -c "luafile test/run.lua"
-- Environment: ORRERY_PLUGIN (this plugin's directory), ORRERY_BIN, ORRERY_TEST_NODE,
-- ORRERY_TEST_COOKIE_FILE, ORRERY_TEST_ROOT (a copy of tests/fixtures/kv),
-- ORRERY_TEST_OUT (a scratch directory). Prints TAP-like lines and a closing
-- "N passed, N failed"; exits non-zero on failure.
local PLUGIN = assert(os.getenv('ORRERY_PLUGIN'), 'ORRERY_PLUGIN')
local BIN = assert(os.getenv('ORRERY_BIN'), 'ORRERY_BIN')
local NODE = assert(os.getenv('ORRERY_TEST_NODE'), 'ORRERY_TEST_NODE')
local COOKIE_FILE = assert(os.getenv('ORRERY_TEST_COOKIE_FILE'), 'ORRERY_TEST_COOKIE_FILE')
local ROOT = assert(os.getenv('ORRERY_TEST_ROOT'), 'ORRERY_TEST_ROOT')
local OUT = assert(os.getenv('ORRERY_TEST_OUT'), 'ORRERY_TEST_OUT')
local LONG = 60000

local v = vim.version()
local VERSION = string.format('%d.%d.%d', v.major, v.minor, v.patch)
local passed, failed = 0, 0

local function say(s)
  io.stdout:write('[nvim ' .. VERSION .. '] ' .. s .. '\n')
  io.stdout:flush()
end

local function check(name, cond, detail)
  if cond then
    passed = passed + 1
    say('ok - ' .. name)
  else
    failed = failed + 1
    say('not ok - ' .. name .. (detail and (': ' .. tostring(detail)) or ''))
  end
  return cond
end

local function wait(ms, pred)
  return vim.wait(ms, pred, 50)
end

local function finish()
  -- Stop the servers and let them detach (the node is left as found).
  for _, c in ipairs(require('orrery.util').clients({ name = 'orrery' })) do
    require('orrery.util').stop(c)
  end
  wait(10000, function()
    return #(vim.lsp.get_clients or vim.lsp.get_active_clients)() == 0
  end)
  say(string.format('%d passed, %d failed', passed, failed))
  if failed > 0 then
    vim.cmd('cquit 1')
  else
    vim.cmd('qall!')
  end
end

-- ORRERY_TEST_ONLY (a Lua pattern) runs only the matching tests, with setup and attach.
local ONLY = os.getenv('ORRERY_TEST_ONLY')
local function run(name, fn)
  if ONLY and name ~= 'setup' and name ~= 'attach' and not name:find(ONLY) then
    return
  end
  local ok, err = xpcall(fn, debug.traceback)
  if not ok then
    check(name .. ' (raised)', false, err)
  end
end

local function messages()
  return vim.fn.execute('messages')
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

local function write_file(path, text)
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
end

vim.o.lines = 80
if os.getenv('ORRERY_TEST_LSP_LOG') then
  vim.lsp.set_log_level(os.getenv('ORRERY_TEST_LSP_LOG'))
end
vim.o.columns = 200
vim.opt.runtimepath:prepend(PLUGIN)

-- A stand-in for nvim-dap with the fields nvim-dap's users and this plugin touch:
-- `adapters`, `configurations`, and `session()` whose session has `:request()` (answering
-- with the canned body `dap_bodies[command]`, a function of the arguments or a table, else {}).
local dap_requests = {}
local dap_bodies = {}
local fake_session = {
  stopped_thread_id = 7,
  capabilities = { supportsStepBack = true },
  config = { type = 'orrery', name = 'Orrery: attach' },
}
function fake_session.request(_, command, arguments, cb)
  table.insert(dap_requests, { command = command, arguments = arguments })
  local body = dap_bodies[command] or {}
  if type(body) == 'function' then
    body = body(arguments)
  end
  if cb then
    cb(nil, body)
  end
end
local dap_runs = {}
local fake_dap = {
  run = function(config)
    table.insert(dap_runs, config)
  end,
  adapters = {},
  configurations = { elixir = { { type = 'mix_task', request = 'launch', name = 'not ours' } } },
  session = function()
    return fake_session
  end,
}
package.loaded.dap = fake_dap

local orrery = require('orrery')
local util = require('orrery.util')

run('setup', function()
  orrery.setup({ binary = BIN, node = NODE, cookie_file = COOKIE_FILE, refresh_ms = 300 })
  check('user commands defined', vim.fn.exists(':OrreryStatus') == 2 and vim.fn.exists(':OrreryAttach') == 2
    and vim.fn.exists(':OrreryInspect') == 2 and vim.fn.exists(':OrreryProcesses') == 2
    and vim.fn.exists(':OrreryRollback') == 2 and vim.fn.exists(':OrreryStepBack') == 2
    and vim.fn.exists(':OrreryReverseContinue') == 2 and vim.fn.exists(':OrreryDebugTest') == 2
    and vim.fn.exists(':OrreryTimeline') == 2 and vim.fn.exists(':OrreryStateHistory') == 2
    and vim.fn.exists(':OrreryValueHistory') == 2)
  check('lens command orrery.debugTest handled client-side', type(vim.lsp.commands['orrery.debugTest']) == 'function')
end)

local file = ROOT .. '/lib/kv/bucket.ex'
vim.cmd('edit ' .. vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()
local client

run('attach', function()
  check('filetype elixir for *.ex', vim.bo[buf].filetype == 'elixir', vim.bo[buf].filetype)
  check('client attached', wait(10000, function()
    client = util.clients({ name = 'orrery', bufnr = buf })[1]
    return client ~= nil and vim.lsp.buf_is_attached(buf, client.id)
  end))
  if client then
    check('root dir is the mix project', client.config.root_dir == ROOT, client.config.root_dir)
    check('started with the configured settings', client.config.init_options.node == NODE
      and client.config.settings.orrery.cookieFile == COOKIE_FILE)
  end
end)
if not client then
  finish()
  return
end

run('code lenses', function()
  local titles = ''
  local ok = wait(LONG, function()
    local t = {}
    for _, l in ipairs(vim.lsp.codelens.get(buf)) do
      table.insert(t, l.command and l.command.title or '?')
    end
    titles = table.concat(t, ' | ')
    return titles:find('1 live process', 1, true) ~= nil
  end)
  check('lens carries "1 live process"', ok, titles)
  local inspect_lens
  for _, l in ipairs(vim.lsp.codelens.get(buf)) do
    if l.command and l.command.command == 'orrery.inspectState' then
      inspect_lens = l
    end
  end
  check('"Inspect state" lens', inspect_lens ~= nil, titles)
  if inspect_lens then
    -- What vim.lsp.codelens.run() does for a client-side command.
    vim.lsp.commands['orrery.inspectState'](inspect_lens.command, { bufnr = buf, client_id = client.id })
    local sbuf
    check('lens command opens the state', wait(10000, function()
      sbuf = vim.fn.bufnr('orrery://state/KV.Bucket')
      return sbuf ~= -1 and buffer_text(sbuf):find('%{}', 1, true) ~= nil
    end), sbuf and sbuf ~= -1 and buffer_text(sbuf) or 'no buffer')
    vim.cmd('only')
    vim.api.nvim_set_current_buf(buf)
  end
end)

run('inlay hints', function()
  local line = 5 -- `use GenServer`
  local ets_line
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l:find(':ets.new', 1, true) then
      ets_line = i - 1
    end
  end
  if vim.fn.has('nvim-0.10') == 1 then
    check('inlay hints enabled', vim.lsp.inlay_hint.is_enabled({ bufnr = buf }))
    local labels = {}
    local function collect()
      labels = {}
      for _, h in ipairs(vim.lsp.inlay_hint.get({ bufnr = buf })) do
        local label = h.inlay_hint.label
        if type(label) == 'table' then
          local parts = {}
          for _, p in ipairs(label) do
            table.insert(parts, p.value)
          end
          label = table.concat(parts)
        end
        labels[h.inlay_hint.position.line] = (labels[h.inlay_hint.position.line] or '') .. label
      end
    end
    check('inlay hint "1 proc" on `use GenServer`', wait(LONG, function()
      collect()
      return (labels[line] or ''):find('1 proc', 1, true) ~= nil
    end), vim.inspect(labels))
    check('inlay hint "2 rows" on :ets.new', wait(LONG, function()
      collect()
      return (labels[ets_line] or ''):find('2 rows', 1, true) ~= nil
    end), vim.inspect(labels))
  else
    local live = require('orrery.live')
    local vt = {}
    check('virtual text "1 proc" on `use GenServer`', wait(LONG, function()
      vt = live.virtual_text(buf)
      return (vt[line] or ''):find('1 proc', 1, true) ~= nil
    end), vim.inspect(vt))
    check('virtual text "2 rows" on :ets.new', wait(LONG, function()
      vt = live.virtual_text(buf)
      return (vt[ets_line] or ''):find('2 rows', 1, true) ~= nil
    end), vim.inspect(vt))
  end
end)

run('hover', function()
  vim.api.nvim_win_set_cursor(0, { 1, 14 }) -- on KV.Bucket in `defmodule KV.Bucket do`
  local text = ''
  local function float_text()
    for _, w in ipairs(vim.api.nvim_list_wins()) do
      if vim.api.nvim_win_get_config(w).relative ~= '' then
        return buffer_text(vim.api.nvim_win_get_buf(w))
      end
    end
    return nil
  end
  local ok = wait(LONG, function()
    vim.lsp.buf.hover()
    wait(3000, function()
      return float_text() ~= nil
    end)
    text = float_text() or ''
    if text:find('%{}', 1, true) then
      return true
    end
    -- Close the float and ask again.
    vim.api.nvim_set_current_buf(buf)
    for _, w in ipairs(vim.api.nvim_list_wins()) do
      if vim.api.nvim_win_get_config(w).relative ~= '' then
        vim.api.nvim_win_close(w, true)
      end
    end
    return false
  end)
  check('hover shows the live state %{}', ok, text)
  check('hover names the module', text:find('KV.Bucket', 1, true) ~= nil, text)
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= '' then
      vim.api.nvim_win_close(w, true)
    end
  end
end)

-- The node's state changes behind the editor's back: the server's refresh requests must
-- bring the new value into the buffer without any editor action.
run('live refresh', function()
  local live = require('orrery.live')
  local counts = { lens_refresh = 0, hint_refresh = 0, lenses = 0 }
  local orig_lens_refresh, orig_on_codelens = live.on_lens_refresh, vim.lsp.codelens.on_codelens
  live.on_lens_refresh = function(...)
    counts.lens_refresh = counts.lens_refresh + 1
    return orig_lens_refresh(...)
  end
  vim.lsp.codelens.on_codelens = function(...)
    counts.lenses = counts.lenses + 1
    return orig_on_codelens(...)
  end
  local hint_owner = vim.fn.has('nvim-0.10') == 1 and vim.lsp.inlay_hint or live
  local hint_key = vim.fn.has('nvim-0.10') == 1 and 'on_refresh' or 'on_hint_refresh'
  local orig_hint = hint_owner[hint_key]
  hint_owner[hint_key] = function(...)
    counts.hint_refresh = counts.hint_refresh + 1
    return orig_hint(...)
  end

  local cookie = vim.trim(table.concat(vim.fn.readfile(COOKIE_FILE), '\n'))
  local code
  local job = vim.fn.jobstart({
    'elixir', '--sname', 'poke_' .. tostring(math.random(1, 1e9)), '--cookie', cookie, '-e',
    string.format(':ok = :rpc.call(:"%s", KV.Bucket, :put, [:greeting, "hello"])', NODE),
  }, {
    on_exit = function(_, c)
      code = c
    end,
  })
  check('changed the state on the node', job > 0 and wait(LONG, function()
    return code ~= nil
  end) and code == 0, code)

  local want = '1 proc · %{greeting: "hello"}'
  local seen = ''
  local ok = wait(LONG, function()
    if vim.fn.has('nvim-0.10') == 1 then
      seen = ''
      for _, h in ipairs(vim.lsp.inlay_hint.get({ bufnr = buf })) do
        local label = h.inlay_hint.label
        seen = seen .. (type(label) == 'string' and label or vim.inspect(label))
      end
    else
      seen = live.virtual_text(buf)[5] or ''
    end
    return seen:find(want, 1, true) ~= nil
  end)
  check('hint follows the node: ' .. want, ok, seen)
  check('server asked to refresh inlay hints', counts.hint_refresh > 0, vim.inspect(counts))
  check('server asked to refresh lenses, and they were fetched again',
    wait(10000, function()
      return counts.lens_refresh > 0 and counts.lenses > 0
    end), vim.inspect(counts))
  live.on_lens_refresh, vim.lsp.codelens.on_codelens, hint_owner[hint_key] =
    orig_lens_refresh, orig_on_codelens, orig_hint
end)

run(':OrreryStatus', function()
  vim.cmd('messages clear')
  vim.cmd('OrreryStatus')
  local ok = wait(10000, function()
    return messages():find('attached to ' .. NODE, 1, true) ~= nil
  end)
  local m = messages()
  check(':OrreryStatus reports the node', ok, m)
  check(':OrreryStatus reports OTP and Elixir', m:find('OTP %d+') ~= nil and m:find('Elixir %d') ~= nil, m)
end)

run(':OrreryInspect', function()
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_win_set_cursor(0, { 20, 0 }) -- inside the module, not on an alias
  local cmds = require('orrery.commands')
  check('module at cursor is the enclosing defmodule', cmds.module_at_cursor() == 'KV.Bucket', cmds.module_at_cursor())
  local sbuf = vim.fn.bufnr('orrery://state/KV.Bucket')
  if sbuf ~= -1 then
    vim.api.nvim_buf_delete(sbuf, { force = true })
  end
  vim.cmd('OrreryInspect')
  local ok = wait(10000, function()
    sbuf = vim.fn.bufnr('orrery://state/KV.Bucket')
    return sbuf ~= -1 and buffer_text(sbuf):find('%{greeting: "hello"}', 1, true) ~= nil
  end)
  check(':OrreryInspect shows the state in a scratch buffer', ok, sbuf ~= -1 and buffer_text(sbuf) or 'no buffer')
  if sbuf ~= -1 then
    check('state buffer is a scratch buffer', vim.bo[sbuf].buftype == 'nofile' and not vim.bo[sbuf].modifiable)
    check('state buffer names the node', buffer_text(sbuf):find(NODE, 1, true) ~= nil, buffer_text(sbuf))
  end
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
end)

run(':OrreryProcesses', function()
  vim.cmd('OrreryProcesses')
  local pbuf = -1
  local ok = wait(10000, function()
    pbuf = vim.fn.bufnr('orrery://processes')
    return pbuf ~= -1 and buffer_text(pbuf):find('KV.Bucket', 1, true) ~= nil
  end)
  check(':OrreryProcesses lists KV.Bucket', ok, pbuf ~= -1 and buffer_text(pbuf) or 'no buffer')
  if pbuf ~= -1 then
    check(':OrreryProcesses has a header and the node', buffer_text(pbuf):find('MEMORY', 1, true) ~= nil
      and buffer_text(pbuf):find(NODE, 1, true) ~= nil)
  end
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
end)

run(':OrreryRollback', function()
  vim.cmd('messages clear')
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_win_set_cursor(0, { 1, 14 })
  vim.cmd('OrreryRollback')
  -- Nothing was hot-swapped: whatever the server says (no previous version, or no such
  -- command in an older server) must reach the user.
  local ok = wait(10000, function()
    return messages():find('Orrery', 1, true) ~= nil
  end)
  check(":OrreryRollback shows the server's answer", ok, messages())
  say('# rollback answer: ' .. vim.trim(messages()))
end)

run('DAP registration', function()
  local a = fake_dap.adapters.orrery
  check('adapter registered', type(a) == 'table' and a.type == 'executable' and a.command == BIN
    and type(a.args) == 'table' and a.args[1] == 'dap' and #a.args == 1, vim.inspect(a))
  local configs = fake_dap.configurations.elixir or {}
  local launch, test_launch, attach, others = nil, nil, nil, 0
  for _, c in ipairs(configs) do
    if c.type == 'orrery' and c.request == 'launch' and c.task == 'test' then
      test_launch = c
    elseif c.type == 'orrery' and c.request == 'launch' then
      launch = c
    elseif c.type == 'orrery' and c.request == 'attach' then
      attach = c
    else
      others = others + 1
    end
  end
  check('launch configuration', launch ~= nil and type(launch.name) == 'string' and launch.record == true
    and type(launch.recordLimit) == 'number' and launch.cwd == '${workspaceFolder}', vim.inspect(launch))
  check('mix test configuration', test_launch ~= nil and type(test_launch.taskArgs) == 'table',
    vim.inspect(test_launch))
  check('attach configuration', attach ~= nil and type(attach.name) == 'string'
    and (type(attach.node) == 'function' and attach.node() == NODE), vim.inspect(attach))
  check("other plugins' configurations kept", others == 1)
  require('orrery.dap').register(fake_dap)
  check('registering again does not duplicate', #fake_dap.configurations.elixir == #configs)
  local enriched
  a.enrich_config({ type = 'orrery', request = 'attach', name = 'x' }, function(c)
    enriched = c
  end)
  local cookie = vim.trim(table.concat(vim.fn.readfile(COOKIE_FILE), '\n'))
  check('enrich_config fills node and cookie', enriched and enriched.node == NODE and enriched.cookie == cookie)
  vim.cmd('OrreryStepBack')
  vim.cmd('OrreryReverseContinue')
  check(':OrreryStepBack sends stepBack', dap_requests[1] and dap_requests[1].command == 'stepBack'
    and dap_requests[1].arguments.threadId == 7, vim.inspect(dap_requests))
  check(':OrreryReverseContinue sends reverseContinue', dap_requests[2]
    and dap_requests[2].command == 'reverseContinue' and dap_requests[2].arguments.threadId == 7)
  -- Without a session: an error, no request.
  fake_dap.session = function()
    return nil
  end
  vim.cmd('messages clear')
  vim.cmd('OrreryStepBack')
  check('step back without a session says so',
    #dap_requests == 2 and messages():find('no debug session', 1, true) ~= nil)
end)

-- The recording views: rendering, and the commands against the fake session's canned bodies.
run('recording views', function()
  local h = require('orrery.history')
  local steps = {
    total = 3,
    events = {
      { seq = 10, timeUs = 1000000, node = 'kv@h', pid = '#PID<0.150.0>', module = 'KV.Steps', ['function'] = 'run/1',
        line = 5, depth = 0, kind = 'line', bindings = { x = '1' } },
      { seq = 11, timeUs = 1001500, node = 'kv@h', pid = '#PID<0.150.0>', module = 'KV.Steps', ['function'] = 'run/1',
        line = 6, depth = 0, kind = 'line', bindings = { y = '[1, 2]', x = '1' } },
      { seq = 12, timeUs = 1002250, node = 'kv@h', pid = '#PID<0.150.0>', module = 'KV.Calc', ['function'] = 'add/2',
        line = 7, depth = 1, kind = 'return', bindings = {}, result = '{:ok, 3 | 4}' },
    },
  }
  local lines = h.render_timeline(steps, { module = 'KV.Steps' })
  check('timeline: title', lines[1] == '# Orrery timeline — KV.Steps', lines[1])
  check('timeline: header', vim.tbl_contains(lines, '| seq | time | pid | function:line | bindings / result |'),
    vim.inspect(lines))
  check('timeline: a line event', vim.tbl_contains(lines, '| 10 | +0.000 ms | #PID<0.150.0> | run/1:5 | `x = 1` |'),
    vim.inspect(lines))
  check('timeline: bindings sorted, relative ms',
    vim.tbl_contains(lines, '| 11 | +1.500 ms | #PID<0.150.0> | run/1:6 | `x = 1, y = [1, 2]` |'), vim.inspect(lines))
  check('timeline: a return as → result, other module named, pipes escaped', vim.tbl_contains(lines,
    '| 12 | +2.250 ms | #PID<0.150.0> |   KV.Calc.add/2:7 | → `{:ok, 3 \\| 4}` |'), vim.inspect(lines))
  local empty = table.concat(h.render_timeline({ total = 0, events = {} }, {}), '\n')
  check('timeline: nothing recorded says why', empty:find('record = true', 1, true) ~= nil, empty)
  local paged = table.concat(h.render_timeline({ total = 2500, events = { steps.events[1] } }, { offset = 1500 }), '\n')
  check('timeline: a page says which events', paged:find('events 1501–1501 of 2500', 1, true) ~= nil, paged)
  local long = h.code(string.rep('x', 500))
  check('cells: long values cut', vim.fn.strchars(long) <= h.CELL_MAX + 2 and long:find('…', 1, true) ~= nil, long)
  check('cells: one line', h.code('%{\n  a: 1\n}') == '`%{ a: 1 }`', h.code('%{\n  a: 1\n}'))

  local bucket = {
    module = 'KV.Bucket',
    history = {
      { seq = 3, timeUs = 100, pid = '#PID<0.140.0>', node = 'kv@h', callback = 'handle_call/3',
        message = { request = '{:put, :a, 1}' }, stateBefore = '%{}', stateAfter = '%{a: 1}',
        returned = '{:reply, :ok, %{a: 1}}', line = 20 },
      { seq = 9, timeUs = 2100, pid = '#PID<0.140.0>', node = 'kv@h', callback = 'handle_call/3',
        message = { request = '{:get, :a}' }, stateBefore = '%{a: 1}', stateAfter = '%{a: 1}', line = 24 },
      { seq = 12, timeUs = 3100, pid = '#PID<0.140.0>', callback = 'handle_cast/2',
        message = { msg = ':reset' }, stateBefore = '%{a: 1}', stateAfter = vim.NIL },
    },
  }
  lines = h.render_state_history(bucket)
  check('state history: header', vim.tbl_contains(lines,
    '| seq | time | pid | callback | message | state before → state after | returned |'), vim.inspect(lines))
  check('state history: message, before → after, returned', vim.tbl_contains(lines, '| 3 | +0.000 ms | #PID<0.140.0> '
    .. '| handle_call/3:20 | `{:put, :a, 1}` | `%{}` → `%{a: 1}` | `{:reply, :ok, %{a: 1}}` |'), vim.inspect(lines))
  check('state history: unchanged', vim.tbl_contains(lines, '| 9 | +2.000 ms | #PID<0.140.0> | handle_call/3:24 '
    .. '| `{:get, :a}` | `%{a: 1}` (unchanged) |  |'), vim.inspect(lines))
  check('state history: unknown state after', vim.tbl_contains(lines,
    '| 12 | +3.000 ms | #PID<0.140.0> | handle_cast/2 | `:reset` | `%{a: 1}` → ? |  |'), vim.inspect(lines))
  local values = {
    variable = 'acc',
    changes = {
      { seq = 4, timeUs = 10, pid = '#PID<0.9.0>', module = 'KV.Steps', ['function'] = 'sum/2', line = 8,
        value = '0', with = { x = '1' } },
      { seq = 7, timeUs = 1010, pid = '#PID<0.9.0>', module = 'KV.Steps', ['function'] = 'sum/2', line = 8,
        value = '1', with = {} },
    },
  }
  lines = h.render_value_history(values)
  check('value history: rows', lines[1] == '# Orrery value history — `acc`'
    and vim.tbl_contains(lines, '| 4 | +0.000 ms | #PID<0.9.0> | KV.Steps.sum/2:8 | `0` | `x = 1` |')
    and vim.tbl_contains(lines, '| 7 | +1.000 ms | #PID<0.9.0> | KV.Steps.sum/2:8 | `1` |  |'), vim.inspect(lines))
  check('timeline arguments: module, pid, all', vim.deep_equal(h.timeline_args('KV.Steps'), { module = 'KV.Steps' })
    and vim.deep_equal(h.timeline_args('<0.1.0>'), { pid = '#PID<0.1.0>' }) and vim.deep_equal(h.timeline_args(''), {}))

  -- The commands, on the (fake) nvim-dap session.
  fake_dap.session = function()
    return fake_session
  end
  dap_bodies['orrery/timeline'] = steps
  dap_bodies['orrery/stateHistory'] = bucket
  dap_bodies['orrery/valueHistory'] = values
  local function last_request()
    return dap_requests[#dap_requests] or {}
  end
  local function view(name)
    local b = vim.fn.bufnr('orrery://' .. name)
    return b ~= -1 and b or nil
  end
  vim.cmd('OrreryTimeline KV.Steps')
  local r = last_request()
  check(':OrreryTimeline sends orrery/timeline for the module', r.command == 'orrery/timeline'
    and r.arguments.module == 'KV.Steps' and r.arguments.offset == 0 and r.arguments.limit == h.LIMIT, vim.inspect(r))
  local tb = view('timeline/KV.Steps')
  check(':OrreryTimeline opens a markdown scratch buffer', tb and vim.bo[tb].filetype == 'markdown'
    and vim.bo[tb].buftype == 'nofile' and not vim.bo[tb].modifiable, tb)
  check(':OrreryTimeline shows the events', tb and buffer_text(tb):find('| run/1:5 | `x = 1` |', 1, true) ~= nil,
    tb and buffer_text(tb))
  -- Default: the module around the cursor in an Elixir buffer.
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd('OrreryTimeline')
  r = last_request()
  check(':OrreryTimeline without an argument: the module of the buffer', r.arguments.module == 'KV.Bucket',
    vim.inspect(r))
  -- More than one page: the newest events.
  local n = #dap_requests
  dap_bodies['orrery/timeline'] = function(a)
    return { total = 2500, events = { vim.tbl_extend('force', steps.events[1], { seq = a.offset + 1 }) } }
  end
  vim.cmd('OrreryTimeline *')
  check(':OrreryTimeline * asks for everything, then the newest page', #dap_requests == n + 2
    and dap_requests[n + 1].arguments.module == nil and dap_requests[n + 2].arguments.offset == 2500 - h.LIMIT,
    vim.inspect(dap_requests))
  local all = view('timeline/all')
  check(':OrreryTimeline * says which events',
    all and buffer_text(all):find('events 1501–1501 of 2500', 1, true) ~= nil, all and buffer_text(all))
  vim.cmd('OrreryStateHistory KV.Bucket')
  r = last_request()
  check(':OrreryStateHistory sends orrery/stateHistory', r.command == 'orrery/stateHistory'
    and r.arguments.module == 'KV.Bucket', vim.inspect(r))
  local sb = view('state-history/KV.Bucket')
  check(':OrreryStateHistory shows the callbacks', sb and vim.bo[sb].filetype == 'markdown'
    and buffer_text(sb):find('`%{}` → `%{a: 1}`', 1, true) ~= nil, sb and buffer_text(sb))
  vim.cmd('OrreryValueHistory acc')
  r = last_request()
  check(':OrreryValueHistory sends orrery/valueHistory', r.command == 'orrery/valueHistory'
    and r.arguments.variable == 'acc', vim.inspect(r))
  local vb = view('value-history/acc')
  check(':OrreryValueHistory shows the values', vb and buffer_text(vb):find('| `0` | `x = 1` |', 1, true) ~= nil,
    vb and buffer_text(vb))
  -- Default: the word under the cursor.
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
  local row
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l:find('state', 1, true) and not row then
      row = i
      vim.api.nvim_win_set_cursor(0, { i, (l:find('state', 1, true)) })
    end
  end
  vim.cmd('OrreryValueHistory')
  r = last_request()
  check(':OrreryValueHistory without an argument: the word under the cursor',
    row and r.command == 'orrery/valueHistory' and r.arguments.variable == 'state', vim.inspect(r))

  -- Another debugger's session, or none: a clear message, no request.
  n = #dap_requests
  fake_session.config = { type = 'python', name = 'Launch file' }
  vim.cmd('messages clear')
  vim.cmd('OrreryTimeline KV.Steps')
  check('not an Orrery session: says so', #dap_requests == n
    and messages():find('not "orrery"', 1, true) ~= nil, messages())
  fake_session.config = { type = 'orrery', name = 'Orrery: attach' }
  fake_dap.session = function()
    return nil
  end
  vim.cmd('messages clear')
  vim.cmd('OrreryStateHistory KV.Bucket')
  check('no session: says so', #dap_requests == n and messages():find('no debug session', 1, true) ~= nil, messages())
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
end)

-- "Debug test" lenses in an ExUnit file: their command (client-side) and :OrreryDebugTest
-- hand the lens's launch configuration to nvim-dap's dap.run().
run('debug test', function()
  local dapmod = require('orrery.dap')
  local function lens(line, title)
    return { range = { start = { line = line, character = 0 } }, command = { title = title or 'Debug test',
      command = 'orrery.debugTest', arguments = { { line = line } } } }
  end
  local inspect = lens(5, 'Inspect state')
  inspect.command.command = 'orrery.inspectState'
  local picks = { lens(0), lens(3), inspect, lens(4), lens(9) }
  local function pick(line)
    local l = dapmod.nearest_test_lens(picks, line)
    return l and l.range.start.line
  end
  check('nearest lens: the test at or above the cursor, else describe, else the file',
    pick(4) == 4 and pick(6) == 4 and pick(8) == 4 and pick(100) == 9 and pick(1) == 0 and pick(3) == 3
      and dapmod.nearest_test_lens({ lens(2) }, 1) == nil and dapmod.nearest_test_lens(vim.NIL, 1) == nil,
    vim.inspect({ pick(4), pick(6), pick(100), pick(1) }))

  local rel = 'test/kv_debug_test.exs'
  vim.fn.mkdir(ROOT .. '/test', 'p')
  write_file(ROOT .. '/' .. rel, table.concat({
    'defmodule KV.DebugTest do', --  1
    '  use ExUnit.Case', --          2
    '', --                           3
    '  describe "put" do', --        4
    '    test "stores" do', --       5
    '      assert 1 + 1 == 2', --    6
    '    end', --                    7
    '  end', --                      8
    '', --                           9
    '  test "other" do', --         10
    '    assert true', --           11
    '  end', --                     12
    'end', --                       13
    '',
  }, '\n'))
  vim.cmd('edit ' .. vim.fn.fnameescape(ROOT .. '/' .. rel))
  local tbuf = vim.api.nvim_get_current_buf()
  local lenses = {}
  local function titles()
    local t = {}
    for _, l in ipairs(lenses) do
      table.insert(t, (l.range.start.line + 1) .. ':' .. (l.command and l.command.title or '?'))
    end
    return table.concat(t, ' | ')
  end
  check('lenses "Debug tests in file", "Debug describe", "Debug test"', wait(LONG, function()
    lenses = vim.lsp.codelens.get(tbuf)
    local t = titles()
    return t:find('1:Debug tests in file', 1, true) and t:find('4:Debug describe', 1, true)
      and t:find('5:Debug test', 1, true) and t:find('10:Debug test', 1, true)
  end), titles())
  local stores
  for _, l in ipairs(lenses) do
    if l.range.start.line == 4 and l.command and l.command.command == 'orrery.debugTest' then
      stores = l
    end
  end
  if stores then
    -- What vim.lsp.codelens.run() does on that line.
    local tclient = util.clients({ name = 'orrery', bufnr = tbuf })[1]
    vim.lsp.commands['orrery.debugTest'](stores.command, { bufnr = tbuf, client_id = tclient and tclient.id })
    local c = dap_runs[1] or {}
    check('lens command runs its configuration with dap.run', #dap_runs == 1
      and vim.deep_equal(c, stores.command.arguments[1]) and c.type == 'orrery' and c.request == 'launch'
      and c.cwd == ROOT and c.task == 'test' and vim.deep_equal(c.taskArgs, { rel .. ':5' }), vim.inspect(dap_runs))
  end
  local function at_cursor(row)
    vim.api.nvim_win_set_cursor(0, { row, 4 })
    local n, started = #dap_runs, false
    vim.cmd('OrreryDebugTest')
    wait(10000, function()
      started = #dap_runs > n
      return started
    end)
    return started and dap_runs[#dap_runs].taskArgs[1] or nil
  end
  check(':OrreryDebugTest in a test debugs that test', at_cursor(6) == rel .. ':5', vim.inspect(dap_runs))
  check(':OrreryDebugTest between tests: the describe', at_cursor(4) == rel .. ':4')
  check(':OrreryDebugTest in the last test', at_cursor(12) == rel .. ':10')
  check(':OrreryDebugTest on the module line: the whole file', at_cursor(1) == rel)

  -- Without nvim-dap: an actionable message, nothing started.
  package.loaded.dap = nil
  vim.cmd('messages clear')
  local n = #dap_runs
  vim.lsp.commands['orrery.debugTest'](stores and stores.command or { arguments = { { type = 'orrery' } } }, {})
  check('without nvim-dap: says to install it', #dap_runs == n and messages():find('nvim-dap', 1, true) ~= nil
    and messages():find('install', 1, true) ~= nil, messages())
  package.loaded.dap = fake_dap
  vim.cmd('messages clear')
  vim.lsp.commands['orrery.debugTest']({ arguments = {} }, {})
  check('without a configuration: says where to get one', #dap_runs == n
    and messages():find(':OrreryDebugTest', 1, true) ~= nil, messages())
  vim.api.nvim_set_current_buf(buf)
end)

run(':checkhealth orrery', function()
  vim.cmd('checkhealth orrery')
  local hbuf = vim.api.nvim_get_current_buf()
  local text = buffer_text(hbuf)
  write_file(OUT .. '/checkhealth-' .. VERSION .. '.txt', text)
  check('checkhealth ran the orrery checks', text:find('Orrery: server binary', 1, true) ~= nil, text)
  check('checkhealth has no ERROR/WARNING', text:find('ERROR') == nil and text:find('WARN') == nil, text)
  check('checkhealth: version', text:find('version: orrery', 1, true) ~= nil, text)
  check('checkhealth: Erlang and Elixir', text:find('Erlang/OTP %d+') ~= nil and text:find('Elixir %d') ~= nil, text)
  check('checkhealth: node reachable', text:find('node ' .. NODE .. ' reachable', 1, true) ~= nil, text)
  check('checkhealth: running server attached', text:find('attached to ' .. NODE, 1, true) ~= nil, text)
  vim.cmd('tabonly')
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
end)

run('help tags', function()
  local rtp = OUT .. '/rtp-' .. VERSION
  vim.fn.mkdir(rtp .. '/doc', 'p')
  vim.fn.writefile(vim.fn.readfile(PLUGIN .. '/doc/orrery.txt'), rtp .. '/doc/orrery.txt')
  vim.opt.runtimepath:append(rtp)
  local ok, err = pcall(vim.cmd, 'helptags ' .. vim.fn.fnameescape(rtp .. '/doc'))
  check(':helptags accepts doc/orrery.txt', ok, err)
  for _, tag in ipairs({ 'orrery', 'orrery.setup()', ':OrreryAttach', ':OrreryStatus', ':OrreryRollback',
    ':OrreryInspect', ':OrreryProcesses', ':OrreryStepBack', ':OrreryReverseContinue', ':OrreryDebugTest',
    ':OrreryTimeline', ':OrreryStateHistory', ':OrreryValueHistory', 'orrery-recording',
    'orrery-debug-test',
    'orrery-health', 'orrery-dap' }) do
    local hok, herr = pcall(vim.cmd, 'help ' .. tag)
    check(':help ' .. tag, hok and vim.bo.buftype == 'help', herr)
    if vim.bo.buftype == 'help' then
      vim.cmd('close')
    end
  end
  vim.api.nvim_set_current_buf(buf)
end)

-- Last: switch node (here: the same node again) through a restart of the server.
run(':OrreryAttach', function()
  local old = client.id
  vim.cmd('OrreryAttach ' .. NODE)
  local new
  local ok = wait(LONG, function()
    new = util.clients({ name = 'orrery', bufnr = buf })[1]
    return new ~= nil and new.id ~= old and vim.lsp.get_client_by_id(old) == nil
  end)
  check(':OrreryAttach restarts the server', ok)
  if ok then
    local st
    wait(LONG, function()
      if st == nil or not st.attached then
        st = false
        require('orrery.commands').request('orrery/status', nil, function(res)
          st = res or false
        end)
        wait(2000, function()
          return st ~= false
        end)
      end
      return st and st.attached
    end)
    check(':OrreryAttach attaches the new server to the node', st and st.attached and st.node == NODE, vim.inspect(st))
  end
end)

-- Two clients on one buffer: Orrery and a static server of the test's own making
-- (tests/static-ls/static_ls.py, standing in for Expert or ElixirLS).
run('beside a static server', function()
  local cur = util.clients({ name = 'orrery', bufnr = buf })[1]
  if not check('an Orrery client for the two-client test', cur ~= nil) then
    return
  end
  local repo = vim.fn.fnamemodify(PLUGIN, ':p:h:h:h')
  local config = {
    name = 'static-ls',
    cmd = { 'python3', repo .. '/tests/static-ls/static_ls.py' },
    root_dir = ROOT,
  }
  local static
  if vim.lsp.start then
    static = vim.lsp.start(config, { bufnr = buf })
  else
    static = vim.lsp.start_client(config)
    vim.lsp.buf_attach_client(buf, static)
  end
  check('both clients attached to the buffer', wait(10000, function()
    local names = {}
    for _, c in ipairs(util.clients({ bufnr = buf })) do
      if c.initialized ~= false then
        names[c.name] = true
      end
    end
    return names.orrery and names['static-ls'] and vim.lsp.buf_is_attached(buf, static)
  end))
  if vim.fn.has('nvim-0.8') == 0 then
    -- No LspAttach on 0.7: the plugin looks again when an Elixir buffer is entered.
    vim.cmd('doautocmd BufEnter')
  end
  check('Orrery told to leave static features to the other server', wait(10000, function()
    local s = cur.config.settings and cur.config.settings.orrery
    return s and s.staticFeatures == 'off'
  end), vim.inspect(cur.config.settings))
  check('beside: the other server is listed', vim.deep_equal(require('orrery.beside').others(buf), { 'static-ls' }),
    vim.inspect(require('orrery.beside').others(buf)))

  local function all(method, params)
    local got
    vim.lsp.buf_request_all(buf, method, params, function(results)
      got = {}
      for id, r in pairs(results) do
        local c = vim.lsp.get_client_by_id(id)
        got[c and c.name or id] = r.result == nil and vim.NIL or r.result
      end
    end)
    wait(15000, function()
      return got ~= nil
    end)
    return got or {}
  end
  local function find(text)
    for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
      local c = l:find(text, 1, true)
      if c then
        return { line = i - 1, character = c - 1 + #text }
      end
    end
  end
  local tdi = { uri = vim.uri_from_bufnr(buf) }
  local syms
  check('symbols: only the static server answers', wait(LONG, function()
    syms = all('textDocument/documentSymbol', { textDocument = tdi })
    return syms['static-ls'] ~= nil and syms['static-ls'] ~= vim.NIL
      and (syms.orrery == nil or syms.orrery == vim.NIL)
  end), vim.inspect(syms))
  local comp = all('textDocument/completion', { textDocument = tdi, position = find('Map.') })
  check('completion: only the static server answers', comp['static-ls'] ~= vim.NIL
    and vim.inspect(comp['static-ls']):find('static_ls_completion', 1, true) ~= nil
    and (comp.orrery == nil or comp.orrery == vim.NIL), vim.inspect(comp))
  local defs = all('textDocument/definition', { textDocument = tdi, position = find('GenServer.ca') })
  check('definition: only the static server answers', defs['static-ls'] ~= vim.NIL
    and (defs.orrery == nil or defs.orrery == vim.NIL), vim.inspect(defs))

  -- Hover: both answer; the merged hover shows the static text, then Orrery's live state.
  vim.api.nvim_win_set_cursor(0, { 1, 15 })
  local lines
  check('merged hover has both servers, Orrery live last', wait(LONG, function()
    lines = nil
    orrery.hover(function(l)
      lines = l
    end)
    wait(15000, function()
      return lines ~= nil
    end)
    local text = table.concat(lines or {}, '\n')
    local s, o = text:find('STATIC-LS hover', 1, true), text:find('%{', 1, true)
    return s ~= nil and o ~= nil and s < o and text:find('orrery (live)', 1, true) ~= nil
  end), vim.inspect(lines))
  check('Orrery adds no docs to a hover the static server answers', wait(10000, function()
    local h = all('textDocument/hover', { textDocument = tdi, position = find('Map.pu') })
    return h['static-ls'] ~= vim.NIL and (h.orrery == nil or h.orrery == vim.NIL)
  end))
  if vim.fn.has('nvim-0.11') == 1 then
    -- 0.11's own K (vim.lsp.buf.hover) shows every client's hover in its float.
    local float_text = ''
    check('vim.lsp.buf.hover shows both hovers', wait(LONG, function()
      vim.api.nvim_win_set_cursor(0, { 1, 15 })
      vim.lsp.buf.hover()
      wait(5000, function()
        for _, w in ipairs(vim.api.nvim_list_wins()) do
          if vim.api.nvim_win_get_config(w).relative ~= '' then
            float_text = buffer_text(vim.api.nvim_win_get_buf(w))
            return true
          end
        end
      end)
      local ok = float_text:find('STATIC-LS hover', 1, true) ~= nil and float_text:find('%{', 1, true) ~= nil
      for _, w in ipairs(vim.api.nvim_list_wins()) do
        if vim.api.nvim_win_get_config(w).relative ~= '' then
          vim.api.nvim_win_close(w, true)
        end
      end
      return ok
    end), float_text)
  end
  -- Orrery's live features go on beside it.
  check('live lens still there beside the static server', wait(LONG, function()
    for _, l in ipairs(vim.lsp.codelens.get(buf)) do
      if l.command and l.command.title:find('1 live process', 1, true) then
        return true
      end
    end
  end))
  local sc = vim.lsp.get_client_by_id(static)
  if sc then
    util.stop(sc)
  end
end)

finish()
