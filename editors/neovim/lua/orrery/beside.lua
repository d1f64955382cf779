-- Orrery beside the user's own Elixir language server (Expert, ElixirLS, Lexical,
-- Next LS): Neovim attaches both clients to the buffer. Orrery then answers only live
-- things: with `static_features = 'auto'` (the default), as soon as another client is
-- attached to an Elixir buffer Orrery serves, the plugin sends `staticFeatures: "off"`
-- (Orrery unregisters, or answers null to, symbols, definition and completion, and
-- leaves docs out of its hovers). `hover()` shows every client's hover in one float.
local util = require('orrery.util')

local M = {}

local function others(bufnr)
  local out = {}
  for _, c in ipairs(util.clients({ bufnr = bufnr })) do
    if c.name ~= 'orrery' and not util.is_stopped(c) then
      table.insert(out, c)
    end
  end
  return out
end

--- The names of the other language servers attached to `bufnr`.
function M.others(bufnr)
  local names = {}
  for _, c in ipairs(others(bufnr)) do
    table.insert(names, c.name)
  end
  table.sort(names)
  return names
end

--- The `staticFeatures` value the settings carry: "on", "off", or nil (auto, not
--- resolved yet: the server's default, on).
function M.setting(value)
  if value == true or value == 'on' then
    return 'on'
  elseif value == false or value == 'off' then
    return 'off'
  end
  return nil
end

-- Orrery clients already told to turn their static features off.
M.turned_off = {}

--- With `static_features = 'auto'`: when another client serves `bufnr` beside Orrery,
--- turn Orrery's static features off (once per Orrery client).
function M.check(bufnr)
  local config = require('orrery').config
  if M.setting(config.static_features) ~= nil or not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  if #others(bufnr) == 0 then
    return
  end
  for _, c in ipairs(util.clients({ name = 'orrery', bufnr = bufnr })) do
    if not M.turned_off[c.id] and not util.is_stopped(c) then
      M.turned_off[c.id] = true
      local settings = c.config.settings or {}
      settings.orrery = settings.orrery or {}
      settings.orrery.staticFeatures = 'off'
      c.config.settings = settings
      util.notify(c, 'workspace/didChangeConfiguration', { settings = { orrery = { staticFeatures = 'off' } } })
    end
  end
end

--- Watch for other clients attaching: LspAttach (0.8+), and on every version when
--- an Elixir buffer is entered or the cursor rests.
function M.watch(group, filetypes)
  -- LspAttach does not exist before 0.8.
  pcall(vim.api.nvim_create_autocmd, 'LspAttach', {
    group = group,
    callback = function(a)
      vim.schedule(function()
        M.check(a.buf)
      end)
    end,
  })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'CursorHold' }, {
    group = group,
    callback = function(a)
      if vim.tbl_contains(filetypes, vim.bo[a.buf].filetype) then
        M.check(a.buf)
      end
    end,
  })
end

local function hover_lines(result)
  if not (result and result.contents) then
    return {}
  end
  local lines = vim.lsp.util.convert_input_to_markdown_lines(result.contents)
  -- Without the empty lines around it (trim_empty_lines is deprecated in 0.11).
  while #lines > 0 and vim.trim(lines[1]) == '' do
    table.remove(lines, 1)
  end
  while #lines > 0 and vim.trim(lines[#lines]) == '' do
    table.remove(lines)
  end
  return lines
end

--- Ask every client of the buffer for its hover and merge the answers: the other
--- servers' first, then Orrery's live one, separated by a rule. `cb(lines)` gets the
--- merged lines; without `cb` they are shown in a floating window (what `K` shows).
function M.hover(cb)
  local bufnr = vim.api.nvim_get_current_buf()
  local clients = util.clients({ bufnr = bufnr })
  local encoding = clients[1] and clients[1].offset_encoding or 'utf-16'
  local params = vim.lsp.util.make_position_params(0, encoding)
  vim.lsp.buf_request_all(bufnr, 'textDocument/hover', params, function(results)
    local parts = {}
    for id, r in pairs(results or {}) do
      local c = vim.lsp.get_client_by_id(id)
      local lines = hover_lines(r.result)
      if #lines > 0 then
        table.insert(parts, { name = c and c.name or tostring(id), lines = lines })
      end
    end
    table.sort(parts, function(a, b)
      if (a.name == 'orrery') ~= (b.name == 'orrery') then
        return b.name == 'orrery'
      end
      return a.name < b.name
    end)
    local merged = {}
    for i, p in ipairs(parts) do
      if i > 1 then
        table.insert(merged, '---')
      end
      if #parts > 1 then
        table.insert(merged, '*' .. p.name .. (p.name == 'orrery' and ' (live)' or '') .. '*')
      end
      vim.list_extend(merged, p.lines)
    end
    if cb then
      cb(merged)
    elseif #merged > 0 then
      vim.lsp.util.open_floating_preview(merged, 'markdown', { focus_id = 'orrery-hover' })
    else
      util.echo('Orrery: no hover here')
    end
  end)
end

return M
