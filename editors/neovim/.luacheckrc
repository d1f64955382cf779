-- luacheck (Debian: lua-check) for the plugin and its tests.
std = 'luajit'
globals = { 'vim' }
max_line_length = 120
exclude_files = { '.test/' }
