-- Orrery for Neovim: starts (or reuses) `orrery lsp` for Elixir buffers and shows what
-- the running BEAM node is doing: hovers, code lenses, inlay hints (virtual text before
-- Neovim 0.10), views in scratch buffers, nvim-dap registration. See `:help orrery`.
local util = require('orrery.util')

local M = {}

M.defaults = {
  -- How to run the server: `cmd` (a list) wins over `binary` (a path); without either,
  -- `orrery` on $PATH, else a `target/release/orrery` of the repository this plugin is in.
  cmd = nil,
  binary = nil,
  -- Server settings (README "Use it"). Without `node`, Orrery starts the workspace's
  -- mix app itself and stops it when Neovim exits.
  node = nil,
  cookie = nil,
  cookie_file = nil,
  allow_writes = nil,
  refresh_ms = nil,
  attach_peers = nil,
  inlay_hints = nil, -- { calls = true, processes = true, ets = true }
  live_call_time = nil, -- mean call times (nil: on with trace sessions, OTP 27+; off before)
  command = nil, -- no `node`: the mix task serving the app (nil: phx.server or run --no-halt)
  attach_running = nil, -- no `node`, the project already runs: 'ask' (nil), 'always', 'never'
  -- Orrery's static features (symbols, definition, completion, docs in hovers):
  -- 'auto' turns them off once another language server (Expert, ElixirLS, ...) is
  -- attached beside Orrery, 'on'/'off' (or true/false) force them.
  static_features = 'auto',
  settings = nil, -- extra raw settings merged into the `orrery` section
  -- Client side.
  filetypes = { 'elixir', 'eelixir', 'heex' },
  codelens = true, -- request and refresh code lenses
  hints = true, -- inlay hints (0.10+) or end-of-line virtual text (0.7-0.9)
  dap = true, -- register the nvim-dap adapter when nvim-dap is installed
  capabilities = nil, -- merged into the client capabilities
  on_attach = nil, -- function(client, bufnr)
}

M.config = vim.deepcopy(M.defaults)
-- root directory -> client id (0.7-0.9, where we do the reuse ourselves)
M.clients = {}

--- The `orrery` executable this plugin would run.
function M.binary()
  local c = M.config
  if c.cmd and c.cmd[1] then
    return c.cmd[1]
  end
  if c.binary then
    return vim.fn.expand(c.binary)
  end
  if vim.fn.executable('orrery') == 1 then
    return vim.fn.exepath('orrery')
  end
  -- A checkout of the repository: editors/neovim/lua/orrery/init.lua -> repo root.
  local here = debug.getinfo(1, 'S').source:gsub('^@', '')
  local repo = vim.fn.fnamemodify(here, ':p:h:h:h:h:h')
  local built = repo .. '/target/release/orrery'
  if vim.fn.executable(built) == 1 then
    return built
  end
  return 'orrery'
end

--- The command line that serves LSP.
function M.cmd()
  return M.config.cmd or { M.binary(), 'lsp' }
end

--- The `orrery` settings section sent as initializationOptions and
--- workspace/configuration.
function M.settings()
  local c = M.config
  local s = {
    node = c.node,
    cookie = c.cookie,
    cookieFile = c.cookie_file and vim.fn.expand(c.cookie_file) or nil,
    allowWrites = c.allow_writes,
    refreshMs = c.refresh_ms,
    attachPeers = c.attach_peers,
    inlayHints = c.inlay_hints,
    liveCallTime = c.live_call_time,
    command = c.command,
    attachRunning = c.attach_running,
    staticFeatures = require('orrery.beside').setting(c.static_features),
  }
  s = vim.tbl_extend('force', s, c.settings or {})
  if vim.tbl_isempty(s) then
    return vim.empty_dict()
  end
  return s
end

--- The workspace root for a buffer: the nearest directory with a mix.exs, or the
--- umbrella root when that directory sits in an umbrella's apps/.
function M.root_dir(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local dir = name ~= '' and vim.fn.fnamemodify(name, ':p:h') or vim.fn.getcwd()
  local found, umbrella
  local d = dir
  while true do
    if vim.fn.filereadable(d .. '/mix.exs') == 1 then
      if not found then
        found = d
      elseif found:sub(1, #d + 6) == d .. '/apps/' then
        umbrella = d
      end
    end
    local parent = vim.fn.fnamemodify(d, ':h')
    if parent == d then
      break
    end
    d = parent
  end
  return umbrella or found or dir
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  -- We act on both refresh requests (see live.lua), on every version.
  caps = vim.tbl_deep_extend('force', caps, {
    workspace = {
      codeLens = { refreshSupport = true },
      inlayHint = { refreshSupport = true },
    },
  })
  if not util.has('0.10') then
    -- Rendered as end-of-line virtual text by live.lua.
    caps.textDocument.inlayHint = { dynamicRegistration = false }
  end
  if M.config.capabilities then
    caps = vim.tbl_deep_extend('force', caps, M.config.capabilities)
  end
  return caps
end

local function handlers()
  local live = require('orrery.live')
  local function live_client(ctx)
    local c = vim.lsp.get_client_by_id(ctx.client_id)
    return c and not util.is_stopped(c)
  end
  return {
    ['workspace/codeLens/refresh'] = function(_, _, ctx)
      if live_client(ctx) then
        live.on_lens_refresh(ctx.client_id)
      end
      return vim.NIL
    end,
    ['workspace/inlayHint/refresh'] = function(err, result, ctx, config)
      if not live_client(ctx) then
        -- A refresh racing our shutdown request: asking now would only earn an error.
        return vim.NIL
      end
      if util.has('0.10') then
        -- vim.lsp.inlay_hint re-requests the hints itself.
        return vim.lsp.handlers['workspace/inlayHint/refresh'](err, result, ctx, config)
      end
      live.on_hint_refresh(ctx.client_id)
      return vim.NIL
    end,
  }
end

local function on_attach(client, bufnr)
  require('orrery.live').attach(client, bufnr)
  require('orrery.beside').check(bufnr)
  if M.config.on_attach then
    M.config.on_attach(client, bufnr)
  end
end

--- The client configuration for a workspace root.
function M.client_config(root)
  local s = M.settings()
  return {
    name = 'orrery',
    cmd = M.cmd(),
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = s,
    settings = { orrery = s },
    capabilities = capabilities(),
    handlers = handlers(),
    on_attach = on_attach,
    flags = { debounce_text_changes = 150 },
  }
end

--- Start (or reuse) the server for `bufnr`'s workspace and attach the buffer.
--- Returns the client id.
function M.start(bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = vim.api.nvim_get_current_buf()
  end
  if vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local root = M.root_dir(bufnr)
  local config = M.client_config(root)
  if util.has('0.10') then
    local id = vim.lsp.start(config, { bufnr = bufnr })
    if id then
      M.clients[root] = id
    end
    return id
  end
  local id = M.clients[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if not client or util.is_stopped(client) then
    id = vim.lsp.start_client(config)
    if not id then
      util.error('could not start ' .. table.concat(config.cmd, ' '))
      return nil
    end
    M.clients[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  return id
end

--- Stop every Orrery client, wait until each has exited (so the old server has
--- detached from the node before a new one attaches), then start again for the buffers
--- they served. `done(ids)` gets the new client ids.
function M.restart(done)
  local old = util.clients({ name = 'orrery' })
  local buffers = {}
  for _, c in ipairs(old) do
    for _, b in ipairs(util.attached_buffers(c)) do
      buffers[b] = true
    end
    util.stop(c)
  end
  M.clients = {}
  local waited = 0
  local function gone()
    for _, c in ipairs(old) do
      if vim.lsp.get_client_by_id(c.id) then
        return false
      end
    end
    return true
  end
  local function resume()
    if not gone() and waited < 10000 then
      if waited == 5000 then
        for _, c in ipairs(old) do
          util.stop(c, true)
        end
      end
      waited = waited + 50
      vim.defer_fn(resume, 50)
      return
    end
    local ids = {}
    for b in pairs(buffers) do
      if vim.api.nvim_buf_is_loaded(b) then
        local id = M.start(b)
        if id then
          ids[id] = true
        end
      end
    end
    if vim.tbl_isempty(buffers) then
      local ft = vim.bo.filetype
      if vim.tbl_contains(M.config.filetypes, ft) then
        local id = M.start(0)
        if id then
          ids[id] = true
        end
      end
    end
    if done then
      done(vim.tbl_keys(ids))
    end
  end
  resume()
end

local function looks_like_elixir(bufnr)
  for _, line in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, 200, false)) do
    if line:match('^%s*defmodule%s') or line:match('^%s*defprotocol%s') or line:match('^%s*defimpl%s') then
      return true
    end
  end
  return false
end

local function filetype_autocmds(group)
  local function set(pattern, ft)
    vim.api.nvim_create_autocmd({ 'BufRead', 'BufNewFile' }, {
      group = group,
      pattern = pattern,
      callback = function(a)
        local cur = vim.bo[a.buf].filetype
        -- Older Neovims may take *.ex for Euphoria (or, with no `filetype on`, leave it unset).
        if cur == '' or (ft == 'elixir' and cur:match('^euphoria') and looks_like_elixir(a.buf)) then
          vim.bo[a.buf].filetype = ft
        end
      end,
    })
  end
  set({ '*.ex', '*.exs' }, 'elixir')
  set({ '*.eex', '*.leex' }, 'eelixir')
  set({ '*.heex' }, 'heex')
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = M.config.filetypes,
    callback = function(a)
      M.start(a.buf)
    end,
  })
end

-- 0.11+: also describe the server to vim.lsp.config, so `:checkhealth vim.lsp` and
-- `vim.lsp.enable('orrery')` know it (setup() itself starts it with vim.lsp.start).
local function register_lsp_config()
  if not (util.has('0.11') and vim.lsp.config) then
    return
  end
  local base = M.client_config(vim.fn.getcwd())
  base.root_dir = function(bufnr, on_dir)
    on_dir(M.root_dir(bufnr))
  end
  base.workspace_folders = nil
  base.filetypes = M.config.filetypes
  pcall(vim.lsp.config, 'orrery', base)
end

--- Configure Orrery and start it for Elixir buffers (now and from now on).
function M.setup(opts)
  opts = opts or {}
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists are replaced, not merged.
  M.config.filetypes = opts.filetypes or M.defaults.filetypes
  M.config.cmd = opts.cmd
  local group = vim.api.nvim_create_augroup('orrery', { clear = true })
  filetype_autocmds(group)
  require('orrery.beside').watch(group, M.config.filetypes)
  require('orrery.commands').create()
  if M.config.dap then
    require('orrery.dap').setup()
  end
  register_lsp_config()
  -- Buffers already open.
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) then
      local name = vim.api.nvim_buf_get_name(b)
      if vim.bo[b].filetype == '' and (name:match('%.exs?$')) then
        vim.bo[b].filetype = 'elixir' -- triggers FileType -> start
      elseif vim.tbl_contains(M.config.filetypes, vim.bo[b].filetype) then
        M.start(b)
      end
    end
  end
  return M
end

-- The commands' Lua side, for mappings and scripts.
function M.status(cb)
  return require('orrery.commands').status(cb)
end
function M.attach(node, cb)
  return require('orrery.commands').attach(node, cb)
end
function M.inspect(target, cb)
  return require('orrery.commands').inspect(target, cb)
end
function M.processes(sort, cb)
  return require('orrery.commands').processes(sort, cb)
end
function M.rollback(module, cb)
  return require('orrery.commands').rollback(module, cb)
end
function M.hover(cb)
  return require('orrery.beside').hover(cb)
end
function M.debug_test(config)
  return require('orrery.dap').debug_test(config)
end
function M.debug_test_at_cursor(cb)
  return require('orrery.dap').debug_test_at_cursor(cb)
end
function M.step_back()
  return require('orrery.dap').step_back()
end
function M.reverse_continue()
  return require('orrery.dap').reverse_continue()
end
function M.timeline(module, cb)
  return require('orrery.history').timeline(module, cb)
end
function M.state_history(module, cb)
  return require('orrery.history').state_history(module, cb)
end
function M.value_history(var, cb)
  return require('orrery.history').value_history(var, cb)
end

return M
