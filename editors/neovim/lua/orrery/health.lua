-- :checkhealth orrery — binary found, its version, Erlang/Elixir present, the configured
-- node reachable, and what running Orrery servers report.
local M = {}

local function reporter()
  -- 0.10+: vim.health.start/ok/...; 0.8-0.9: vim.health.report_*; 0.7: require('health').
  local h = rawget(vim, 'health')
  if h == nil then
    local ok, mod = pcall(require, 'vim.health')
    h = ok and mod or require('health')
  end
  return {
    start = h.start or h.report_start,
    ok = h.ok or h.report_ok,
    info = h.info or h.report_info,
    warn = h.warn or h.report_warn,
    error = h.error or h.report_error,
  }
end

--- Run `argv` with `env` added, wait at most `timeout` ms. Returns code (nil on
--- timeout), stdout and stderr as strings.
function M.run(argv, env, timeout)
  local out, err, code = {}, {}, nil
  local ok, job = pcall(vim.fn.jobstart, argv, {
    env = env,
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = function(_, data)
      out = data or {}
    end,
    on_stderr = function(_, data)
      err = data or {}
    end,
    on_exit = function(_, c)
      code = c
    end,
  })
  if not ok or job <= 0 then
    return -1, '', 'cannot run ' .. tostring(argv[1])
  end
  local finished = vim.wait(timeout or 10000, function()
    return code ~= nil
  end, 20)
  if not finished then
    vim.fn.jobstop(job)
    return nil, table.concat(out, '\n'), table.concat(err, '\n')
  end
  -- on_exit may run before the buffered output callbacks are drained.
  vim.wait(200, function()
    return #out > 0 or #err > 0
  end, 10)
  return code, table.concat(out, '\n'), table.concat(err, '\n')
end

local function last_line(s)
  local last = ''
  for l in s:gmatch('[^\n]+') do
    if l:match('%S') then
      last = l
    end
  end
  return last
end

function M.check()
  local r = reporter()
  local orrery = require('orrery')
  local configured = vim.fn.exists(':OrreryStatus') == 2

  r.start('Orrery: server binary')
  local bin = orrery.binary()
  if vim.fn.executable(bin) == 1 then
    r.ok('binary: ' .. vim.fn.exepath(bin))
    local code, out, err = M.run({ bin, '--version' }, nil, 10000)
    if code == 0 and out:match('orrery') then
      r.ok('version: ' .. last_line(out))
    else
      r.error('`' .. bin .. ' --version` failed: ' .. last_line(err .. '\n' .. out))
    end
  else
    r.error('binary not found: ' .. bin, {
      'Build it with `cargo build --release` in the Orrery repository,',
      "or set require('orrery').setup({ binary = '/path/to/orrery' }).",
    })
  end

  r.start('Orrery: Erlang and Elixir')
  if vim.fn.executable('erl') == 1 then
    local code, out = M.run({
      'erl',
      '-noshell',
      '-eval',
      'io:format("~s~n", [erlang:system_info(otp_release)]), halt().',
    }, nil, 20000)
    if code == 0 then
      r.ok('Erlang/OTP ' .. last_line(out))
    else
      r.warn('erl found but did not run')
    end
  else
    r.error('erl not found', { 'Install Erlang (Debian: apt-get install erlang).' })
  end
  if vim.fn.executable('elixir') == 1 then
    local code, out = M.run({ 'elixir', '--version' }, nil, 20000)
    if code == 0 then
      r.ok(last_line(out))
    else
      r.warn('elixir found but did not run')
    end
  else
    r.error('elixir not found', { 'Install Elixir (Debian: apt-get install elixir).' })
  end

  r.start('Orrery: node')
  if not configured then
    r.warn("require('orrery').setup() has not been called")
  end
  local node = orrery.config.node
  if not node or node == '' then
    r.info("no node configured: Orrery starts the workspace's mix app itself (embedded default)")
  elseif vim.fn.executable(bin) == 1 then
    local env = nil
    local cookie = require('orrery.dap').cookie()
    if cookie then
      env = { ORRERY_COOKIE = cookie } -- not on the command line
    end
    local code, out, err = M.run({ bin, 'status', '--node', node, '--json' }, env, 30000)
    if code == 0 then
      local ok, parsed = pcall(vim.fn.json_decode, out)
      local info = ok and type(parsed) == 'table' and parsed[1] or {}
      r.ok(string.format('node %s reachable (OTP %s, Elixir %s)', node, tostring(info.otp), tostring(info.elixir)))
    elseif code == nil then
      r.error('node ' .. node .. ': no answer within 30 s')
    else
      r.error('node ' .. node .. ' not reachable: ' .. last_line(err .. '\n' .. out), {
        'Check the node name (name@host), that it runs, and cookie / cookie_file.',
      })
    end
  end

  local clients = require('orrery.util').clients({ name = 'orrery' })
  if #clients > 0 then
    r.start('Orrery: running servers')
    for _, c in ipairs(clients) do
      local ok, res = pcall(function()
        if require('orrery.util').has('0.11') then
          return c:request_sync('orrery/status', nil, 5000, 0)
        end
        return c.request_sync('orrery/status', nil, 5000, 0)
      end)
      local st = ok and res and res.result
      local where = string.format('client %d (%s): ', c.id, tostring(c.config.root_dir))
      if st then
        local line = require('orrery.commands').format_status(st)[1]:gsub('^Orrery: ', '')
        if st.attached then
          r.ok(where .. line)
        else
          r.warn(where .. line)
        end
      else
        r.warn(string.format('client %d: no answer to orrery/status', c.id))
      end
      -- Beside which servers, and whether Orrery answers static requests there.
      local beside = {}
      for _, b in ipairs(require('orrery.util').attached_buffers(c)) do
        for _, name in ipairs(require('orrery.beside').others(b)) do
          beside[name] = true
        end
      end
      local names = vim.tbl_keys(beside)
      table.sort(names)
      local statics = (c.config.settings and c.config.settings.orrery or {}).staticFeatures
      r.info(string.format('client %d: beside %s; static features %s', c.id,
        #names > 0 and table.concat(names, ', ') or 'no other language server',
        statics == 'off' and 'off (left to the other server)' or 'on'))
    end
  end
end

return M
