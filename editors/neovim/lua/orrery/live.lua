-- Live values in the buffer: code lenses (all versions), inlay hints (0.10+), and on
-- 0.7-0.9 the same inlay hints drawn as end-of-line virtual text. Refreshed on attach, on
-- the server's workspace/codeLens/refresh and workspace/inlayHint/refresh, and on edits.
local util = require('orrery.util')
local uv = vim.uv or vim.loop

local M = {}

M.ns = vim.api.nvim_create_namespace('orrery_hints')

local function config()
  return require('orrery').config
end

-- One timer per key; a new call within `ms` replaces the pending one.
local timers = {}
local function debounce(key, ms, fn)
  local t = timers[key]
  if t then
    t:stop()
  else
    t = uv.new_timer()
    timers[key] = t
  end
  t:start(ms, 0, vim.schedule_wrap(fn))
end

local function forget(bufnr)
  for _, key in ipairs({ 'lens' .. bufnr, 'hint' .. bufnr }) do
    local t = timers[key]
    if t then
      t:stop()
      t:close()
      timers[key] = nil
    end
  end
end

--- Whether a running (not stopping) Orrery client serves the buffer.
function M.served(bufnr)
  for _, c in ipairs(util.clients({ name = 'orrery', bufnr = bufnr })) do
    if not util.is_stopped(c) then
      return true
    end
  end
  return false
end

--- Ask for code lenses again (Neovim draws them when they arrive).
function M.refresh_lenses(bufnr)
  if not config().codelens then
    return
  end
  debounce('lens' .. bufnr, 20, function()
    if not vim.api.nvim_buf_is_loaded(bufnr) or not M.served(bufnr) then
      return
    end
    if util.has('0.10') then
      vim.lsp.codelens.refresh({ bufnr = bufnr })
    else
      vim.api.nvim_buf_call(bufnr, function()
        vim.lsp.codelens.refresh()
      end)
    end
  end)
end

local function label_text(hint)
  local label = hint.label
  if type(label) == 'table' then
    local parts = {}
    for _, p in ipairs(label) do
      table.insert(parts, p.value or '')
    end
    label = table.concat(parts)
  end
  if hint.paddingLeft and label:sub(1, 1) ~= ' ' then
    label = ' ' .. label
  end
  return label
end

--- Draw inlay hints as virtual text at the end of their lines (0.7-0.9).
function M.render(bufnr, hints)
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  table.sort(hints, function(a, b)
    if a.position.line ~= b.position.line then
      return a.position.line < b.position.line
    end
    return a.position.character < b.position.character
  end)
  local by_line, lines = {}, vim.api.nvim_buf_line_count(bufnr)
  for _, h in ipairs(hints) do
    local l = h.position.line
    if l < lines then
      by_line[l] = by_line[l] or {}
      table.insert(by_line[l], { label_text(h), 'OrreryHint' })
    end
  end
  for l, chunks in pairs(by_line) do
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, l, 0, {
      virt_text = chunks,
      virt_text_pos = 'eol',
      hl_mode = 'combine',
    })
  end
end

--- The virtual-text hints now shown in a buffer, as text per 0-based line.
function M.virtual_text(bufnr)
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, M.ns, 0, -1, { details = true })) do
    local texts = {}
    for _, chunk in ipairs(m[4].virt_text or {}) do
      table.insert(texts, chunk[1])
    end
    out[m[2]] = table.concat(texts)
  end
  return out
end

--- Request inlay hints for the whole buffer and draw them (0.7-0.9 only).
function M.refresh_hints(client, bufnr)
  if util.has('0.10') or not config().hints then
    return
  end
  debounce('hint' .. bufnr, 30, function()
    if not vim.api.nvim_buf_is_loaded(bufnr) or not vim.lsp.buf_is_attached(bufnr, client.id)
      or util.is_stopped(client) then
      return
    end
    local params = {
      textDocument = vim.lsp.util.make_text_document_params(bufnr),
      range = {
        start = { line = 0, character = 0 },
        ['end'] = { line = vim.api.nvim_buf_line_count(bufnr), character = 0 },
      },
    }
    util.request(client, 'textDocument/inlayHint', params, function(err, result)
      if err then
        return
      end
      M.render(bufnr, result or {})
    end, bufnr)
  end)
end

local function each_buffer(client_id, fn)
  local client = vim.lsp.get_client_by_id(client_id)
  if not client then
    return
  end
  for _, b in ipairs(util.attached_buffers(client)) do
    fn(client, b)
  end
end

--- The server says lenses changed.
function M.on_lens_refresh(client_id)
  each_buffer(client_id, function(_, b)
    M.refresh_lenses(b)
  end)
end

--- The server says inlay hints changed (0.7-0.9; 0.10+ handles it itself).
function M.on_hint_refresh(client_id)
  each_buffer(client_id, function(client, b)
    M.refresh_hints(client, b)
  end)
end

--- Called for every buffer the client attaches to.
function M.attach(client, bufnr)
  vim.cmd('highlight default link OrreryHint Comment')
  if config().hints then
    if util.has('0.10') then
      pcall(vim.lsp.inlay_hint.enable, true, { bufnr = bufnr })
    else
      M.refresh_hints(client, bufnr)
    end
  end
  M.refresh_lenses(bufnr)
  local group = vim.api.nvim_create_augroup('orrery_buf_' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'InsertLeave', 'BufWritePost' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.refresh_lenses(bufnr)
      M.refresh_hints(client, bufnr)
    end,
  })
  if not util.has('0.10') then
    vim.api.nvim_create_autocmd('TextChanged', {
      group = group,
      buffer = bufnr,
      callback = function()
        M.refresh_hints(client, bufnr)
      end,
    })
  end
  vim.api.nvim_create_autocmd({ 'BufUnload', 'BufWipeout' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      forget(bufnr)
    end,
  })
end

return M
