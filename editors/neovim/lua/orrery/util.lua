-- Small helpers that paper over differences between Neovim 0.7 and 0.11.
local M = {}

--- Whether this Neovim is at least `version` ("0.10").
function M.has(version)
  return vim.fn.has('nvim-' .. version) == 1
end

-- Client methods: `client.request(...)` up to 0.10, `client:request(...)` from 0.11.
local function method(client, name, ...)
  if M.has('0.11') then
    return client[name](client, ...)
  end
  return client[name](...)
end

function M.request(client, name, params, handler, bufnr)
  return method(client, 'request', name, params, handler, bufnr)
end

function M.notify(client, name, params)
  return method(client, 'notify', name, params)
end

-- Clients we asked to stop (0.7-0.10 have no "stopping" state of their own).
M.stopping = {}

function M.stop(client, force)
  M.stopping[client.id] = true
  return method(client, 'stop', force)
end

--- Stopped, or asked to stop: send it nothing more.
function M.is_stopped(client)
  return M.stopping[client.id] == true or method(client, 'is_stopped')
end

--- Every active client, on any version.
function M.clients(filter)
  filter = filter or {}
  if vim.lsp.get_clients then
    return vim.lsp.get_clients(filter)
  end
  local out = {}
  local all = filter.bufnr and vim.lsp.buf_get_clients(filter.bufnr) or vim.lsp.get_active_clients()
  for _, c in pairs(all) do
    if (not filter.name or c.name == filter.name) and (not filter.id or c.id == filter.id) then
      table.insert(out, c)
    end
  end
  return out
end

--- Buffers a client is attached to.
function M.attached_buffers(client)
  local out = {}
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) and vim.lsp.buf_is_attached(b, client.id) then
      table.insert(out, b)
    end
  end
  return out
end

--- Echo into the message history (so `:messages` keeps it).
function M.echo(msg, hl)
  vim.api.nvim_echo({ { msg, hl or 'None' } }, true, {})
end

function M.error(msg)
  M.echo('Orrery: ' .. msg, 'ErrorMsg')
end

--- A JSON-RPC error as text.
function M.err_text(err)
  if type(err) == 'table' then
    return err.message or vim.inspect(err)
  end
  return tostring(err)
end

--- A scratch buffer in a split, filled with `lines`; reused by name.
function M.scratch(name, lines, filetype)
  local buf = vim.fn.bufnr(name)
  if buf == -1 or not vim.api.nvim_buf_is_valid(buf) then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  if filetype then
    vim.bo[buf].filetype = filetype
  end
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, buf)
  else
    vim.api.nvim_set_current_win(win)
  end
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, silent = true })
  return buf
end

--- Human-readable byte count.
function M.bytes(n)
  if type(n) ~= 'number' then
    return '-'
  end
  if n < 1024 then
    return string.format('%d B', n)
  elseif n < 1024 * 1024 then
    return string.format('%.1f KB', n / 1024)
  end
  return string.format('%.1f MB', n / (1024 * 1024))
end

return M
