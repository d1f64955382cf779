-- The recording of the current nvim-dap session of `orrery dap`: :OrreryTimeline,
-- :OrreryStateHistory and :OrreryValueHistory send the custom DAP requests
-- `orrery/timeline`, `orrery/stateHistory` and `orrery/valueHistory` and show the
-- answer as markdown tables in a scratch buffer. The render_* functions are pure.
local util = require('orrery.util')

local M = {}

--- How many timeline events a view asks for (the newest ones when there are more).
M.LIMIT = 1000
--- Longest value shown in one table cell before it is cut with `…`.
M.CELL_MAX = 160

local function str(v)
  if v == nil or v == vim.NIL then
    return nil
  end
  return tostring(v)
end

local function one_line(s)
  return (s:gsub('%s*\n%s*', ' '))
end

--- Text as code in one markdown table cell: one line, `|` escaped, bounded.
function M.code(s, max)
  s = str(s)
  if not s or s == '' then
    return ''
  end
  max = max or M.CELL_MAX
  s = one_line(s)
  if vim.fn.strchars(s) > max then
    s = vim.fn.strcharpart(s, 0, max - 1) .. '…'
  end
  s = s:gsub('|', '\\|')
  if s:find('`', 1, true) then
    return '`` ' .. s .. ' ``'
  end
  return '`' .. s .. '`'
end

--- Plain text in a table cell (pids, names).
function M.text(s)
  s = str(s)
  if not s then
    return ''
  end
  return (one_line(s):gsub('|', '\\|'))
end

--- Time since `t0` (µs) in milliseconds: `+1.500 ms`.
function M.rel_ms(time_us, t0)
  if type(time_us) ~= 'number' or type(t0) ~= 'number' then
    return '?'
  end
  return string.format('+%.3f ms', (time_us - t0) / 1000)
end

--- `run/1:12`, with the module in front when it is not `module`.
function M.where(e, module)
  local m = ''
  if str(e.module) and e.module ~= module then
    m = e.module .. '.'
  end
  local line = str(e.line) and (':' .. e.line) or ''
  return m .. (str(e['function']) or '?') .. line
end

-- JSON objects decode to tables without order: show bindings sorted by name.
local function sorted_pairs(t)
  local keys = {}
  if type(t) == 'table' then
    for k in pairs(t) do
      if type(k) == 'string' then
        table.insert(keys, k)
      end
    end
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    table.insert(out, { k, t[k] })
  end
  return out
end

--- `a = 1, b = [2]` for a bindings map, as code.
function M.bindings(b, max)
  local parts = {}
  for _, kv in ipairs(sorted_pairs(b)) do
    table.insert(parts, kv[1] .. ' = ' .. (str(kv[2]) or 'nil'))
  end
  if #parts == 0 then
    return ''
  end
  return M.code(table.concat(parts, ', '), max)
end

local function earliest(xs)
  local t0
  for _, x in ipairs(xs) do
    if type(x.timeUs) == 'number' and (t0 == nil or x.timeUs < t0) then
      t0 = x.timeUs
    end
  end
  return t0
end

local NO_RECORDING = 'Nothing recorded. The timeline records only when the session was started with '
  .. '`record = true`, and only in modules with a breakpoint (instrumented): set one and run the code.'

local function plural(n, what)
  return n .. ' ' .. what .. (n == 1 and '' or 's')
end

--- The lines of the timeline view (`orrery/timeline` body); `opts`: module, pid, offset.
function M.render_timeline(body, opts)
  opts = opts or {}
  local scope = {}
  for _, s in ipairs({ opts.module, opts.pid }) do
    if s and s ~= '' then
      table.insert(scope, s)
    end
  end
  local lines = { '# Orrery timeline' .. (#scope > 0 and (' — ' .. table.concat(scope, ' · ')) or ''), '' }
  local events = (type(body) == 'table' and type(body.events) == 'table') and body.events or {}
  local total = (type(body) == 'table' and type(body.total) == 'number') and body.total or #events
  if #events == 0 then
    table.insert(lines, NO_RECORDING)
    return lines
  end
  local offset = opts.offset or 0
  local shown = #events < total
      and string.format('events %d–%d of %d', offset + 1, offset + #events, total)
    or plural(total, 'event')
  table.insert(lines, shown .. '; time relative to the first shown; `→` marks a return and its result.')
  table.insert(lines, '')
  table.insert(lines, '| seq | time | pid | function:line | bindings / result |')
  table.insert(lines, '|---:|---:|---|---|---|')
  local t0 = earliest(events)
  for _, e in ipairs(events) do
    local what
    if e.kind == 'return' then
      what = '→ ' .. M.code(e.result)
      if str(e.state) then
        what = what .. ' (state ' .. M.code(e.state) .. ')'
      end
    else
      what = M.bindings(e.bindings)
    end
    local depth = type(e.depth) == 'number' and math.min(math.max(e.depth, 0), 8) or 0
    table.insert(lines, string.format('| %s | %s | %s | %s%s | %s |', M.text(e.seq), M.rel_ms(e.timeUs, t0),
      M.text(e.pid), string.rep('  ', depth), M.text(M.where(e, opts.module)), what))
  end
  return lines
end

--- The lines of the value history view (`orrery/valueHistory` body).
function M.render_value_history(body)
  local var = type(body) == 'table' and str(body.variable) or '?'
  local lines = { '# Orrery value history — `' .. var .. '`', '' }
  local changes = (type(body) == 'table' and type(body.changes) == 'table') and body.changes or {}
  if #changes == 0 then
    table.insert(lines, 'No recorded value of `' .. var .. '`. ' .. NO_RECORDING:gsub('^Nothing recorded%. ', ''))
    return lines
  end
  table.insert(lines, plural(#changes, 'change') .. '; time relative to the first.')
  table.insert(lines, '')
  table.insert(lines, '| seq | time | pid | function:line | value | with |')
  table.insert(lines, '|---:|---:|---|---|---|---|')
  local t0 = earliest(changes)
  for _, c in ipairs(changes) do
    table.insert(lines, string.format('| %s | %s | %s | %s | %s | %s |', M.text(c.seq), M.rel_ms(c.timeUs, t0),
      M.text(c.pid), M.text(M.where(c)), M.code(c.value), M.bindings(c.with, 100)))
  end
  return lines
end

local function message_text(m)
  local kvs = sorted_pairs(m)
  if #kvs == 1 then
    return M.code(kvs[1][2])
  end
  return M.bindings(m)
end

--- The lines of the state history view (`orrery/stateHistory` body).
function M.render_state_history(body)
  local module = type(body) == 'table' and str(body.module) or '?'
  local lines = { '# Orrery state history — ' .. module, '' }
  local history = (type(body) == 'table' and type(body.history) == 'table') and body.history or {}
  if #history == 0 then
    table.insert(lines, 'No recorded callback of ' .. module .. '. The state history needs a recording session '
      .. '(`record = true`) and a breakpoint in ' .. module .. ', then messages to the process.')
    return lines
  end
  table.insert(lines, plural(#history, 'callback') .. '; time relative to the first.')
  table.insert(lines, '')
  table.insert(lines, '| seq | time | pid | callback | message | state before → state after | returned |')
  table.insert(lines, '|---:|---:|---|---|---|---|---|')
  local t0 = earliest(history)
  for _, h in ipairs(history) do
    local before, after = str(h.stateBefore), str(h.stateAfter)
    local change
    if before and before == after then
      change = M.code(before) .. ' (unchanged)'
    else
      change = (before and M.code(before) or '?') .. ' → ' .. (after and M.code(after) or '?')
    end
    local cb = M.text(h.callback) .. (type(h.line) == 'number' and (':' .. h.line) or '')
    table.insert(lines, string.format('| %s | %s | %s | %s | %s | %s | %s |', M.text(h.seq), M.rel_ms(h.timeUs, t0),
      M.text(h.pid), cb, message_text(h.message), change, M.code(h.returned)))
  end
  return lines
end

--- The `orrery/timeline` arguments for a command argument: a pid, a module or nothing.
function M.timeline_args(arg)
  local t = vim.trim(arg or '')
  if t == '' then
    return {}
  end
  if t:match('^#PID<%d+%.%d+%.%d+>$') then
    return { pid = t }
  end
  if t:match('^<%d+%.%d+%.%d+>$') then
    return { pid = '#PID' .. t }
  end
  return { module = t }
end

--- The current nvim-dap session if it is an Orrery one; else nil and the reason.
function M.session()
  local ok, dap = pcall(require, 'dap')
  if not ok or type(dap) ~= 'table' or type(dap.session) ~= 'function' then
    return nil, 'nvim-dap is not installed: the recording views ask its debug session'
  end
  local s = dap.session()
  if not s then
    return nil, 'no debug session: start an Orrery one with nvim-dap (record = true) and set a breakpoint'
  end
  local cfg = type(s.config) == 'table' and s.config or {}
  local kind = cfg.type
  if kind ~= nil and kind ~= 'orrery' then
    return nil, string.format('the current debug session ("%s") is of type "%s", not "orrery"',
      tostring(cfg.name or '?'), tostring(kind))
  end
  return s
end

-- Send `command` to the Orrery session; `cb(body)` on success, the error echoed otherwise
-- (and `cb(nil, err)`).
local function ask(command, args, cb)
  local s, why = M.session()
  if not s then
    util.error(why)
    return cb(nil, why)
  end
  s:request(command, args, function(err, body)
    if err then
      local msg = command .. ': ' .. util.err_text(err)
      util.error(msg)
      return cb(nil, msg)
    end
    cb(body)
  end)
end

local function show(name, lines)
  return util.scratch('orrery://' .. name, lines, 'markdown')
end

--- :OrreryTimeline [Module|#PID<…>] — default: the module around the cursor (''/'*': all).
function M.timeline(arg, cb)
  local done = cb or function() end
  if arg == nil or arg == '' then
    local buf_name = vim.api.nvim_buf_get_name(0)
    arg = buf_name:match('%.exs?$') and require('orrery.commands').module_at_cursor() or ''
  elseif arg == '*' then
    arg = ''
  end
  local filter = M.timeline_args(arg)
  local function args(offset)
    return vim.tbl_extend('force', filter, { offset = offset, limit = M.LIMIT })
  end
  local function render(body, offset)
    local buf = show('timeline/' .. (filter.module or filter.pid or 'all'),
      M.render_timeline(body, { module = filter.module, pid = filter.pid, offset = offset }))
    done(body, nil, buf)
  end
  ask('orrery/timeline', args(0), function(body, err)
    if not body then
      return done(nil, err)
    end
    local total = type(body.total) == 'number' and body.total or 0
    local n = type(body.events) == 'table' and #body.events or 0
    if total > M.LIMIT and n < total then
      -- More than one page: show the newest events.
      local offset = total - M.LIMIT
      return ask('orrery/timeline', args(offset), function(newest, err2)
        if not newest then
          return done(nil, err2)
        end
        render(newest, offset)
      end)
    end
    render(body, 0)
  end)
end

--- :OrreryStateHistory Module — default: the module around the cursor.
function M.state_history(module, cb)
  local done = cb or function() end
  if module == nil or module == '' then
    module = require('orrery.commands').module_at_cursor()
  end
  if not module then
    util.error('which GenServer? :OrreryStateHistory Module.Name')
    return done(nil, 'no module')
  end
  ask('orrery/stateHistory', { module = module }, function(body, err)
    if not body then
      return done(nil, err)
    end
    done(body, nil, show('state-history/' .. module, M.render_state_history(body)))
  end)
end

--- :OrreryValueHistory var — default: the word under the cursor.
function M.value_history(var, cb)
  local done = cb or function() end
  if var == nil or var == '' then
    var = vim.fn.expand('<cword>')
  end
  if not var or not var:match('^[%l_][%w_]*$') then
    util.error('which variable? :OrreryValueHistory name (e.g. state)')
    return done(nil, 'no variable')
  end
  ask('orrery/valueHistory', { variable = var }, function(body, err)
    if not body then
      return done(nil, err)
    end
    done(body, nil, show('value-history/' .. var, M.render_value_history(body)))
  end)
end

return M
