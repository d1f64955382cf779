// Real BEAM nodes for the acceptance tests: a private copy of tests/fixtures/kv started as a
// node (random --sname and --cookie), and a separate hidden Elixir node ("the outside") that
// calls into it over distribution, as another service or a remote shell would. Everything is
// started in its own process group and killed by pid.
'use strict';

const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const crypto = require('node:crypto');

const REPO = path.resolve(__dirname, '..', '..', '..');

function token(prefix) {
  return prefix + crypto.randomBytes(4).toString('hex');
}

/** The short host name as `--sname` nodes use it (what `erl` calls the host). */
function shortHost() {
  return os.hostname().split('.')[0];
}

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (['_build', 'deps', '.orrery'].includes(e.name)) continue;
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) copyDir(src, dst);
    else fs.copyFileSync(src, dst);
  }
}

function run(cmd, args, opts) {
  const r = cp.spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

const WATCHDOG = 'spawn(fn -> IO.read(:stdio, :line); System.halt(0) end)';

const started = new Set();

function spawnGroup(cmd, args, opts) {
  const child = cp.spawn(cmd, args, { detached: true, ...opts });
  started.add(child);
  child.on('exit', () => started.delete(child));
  return child;
}

function killGroup(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// Whatever happens to the test process, the nodes it started go with it.
process.on('exit', () => {
  for (const c of started) killGroup(c);
});

// The outside: a hidden node reading `ID\tEXPR` lines on stdin, evaluating each EXPR in its own
// process (so a call that blocks on a paused process does not hold up the others) with
// `target` bound to the kv node, and printing `ID\tok|error\tinspect(result)`.
const REMOTE_SCRIPT = `
target = String.to_atom(System.get_env("ORRERY_T_TARGET"))
await = fn await, deadline ->
  ok =
    Node.connect(target) == true and
      Enum.any?(:rpc.call(target, :application, :which_applications, [], 2000) |> List.wrap(), &match?({:kv, _, _}, &1))
  cond do
    ok -> :ok
    System.monotonic_time(:millisecond) > deadline -> :timeout
    true -> Process.sleep(100); await.(await, deadline)
  end
end
# Maps print sorted by key whatever the OTP version (since OTP 26 small maps iterate in atom
# index order; Elixir 1.14.4+ knows :sort_maps, older ones ignore it and print sorted maps).
reply = fn id, status, value ->
  IO.puts(id <> "\\t" <> status <> "\\t" <> inspect(value, limit: :infinity, printable_limit: :infinity, custom_options: [sort_maps: true]))
end
loop = fn loop ->
  case IO.gets("") do
    :eof -> :ok
    {:error, _} -> :ok
    line ->
      [id, expr] = line |> String.trim_trailing("\\n") |> String.split("\\t", parts: 2)
      spawn(fn ->
        try do
          {v, _} = Code.eval_string(expr, target: target, await: fn ms -> await.(await, System.monotonic_time(:millisecond) + ms) end)
          reply.(id, "ok", v)
        catch
          k, e -> reply.(id, "error", {k, e})
        end
      end)
      loop.(loop)
  end
end
IO.puts("ready")
loop.(loop)
`;

class Remote {
  constructor(target, cookie) {
    this.target = target;
    this.next = 1;
    this.pending = new Map();
    this.child = spawnGroup(
      'elixir',
      ['--sname', token('dapt_remote_'), '--cookie', cookie, '--hidden', '-e', REMOTE_SCRIPT],
      { env: { ...process.env, ORRERY_T_TARGET: target }, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`remote node exited (${code})`)));
      const rl = readline.createInterface({ input: this.child.stdout });
      rl.on('line', (line) => {
        if (line === 'ready') return resolve();
        const [id, status, value] = line.split('\t');
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        if (status === 'ok') p.resolve(value);
        else p.reject(new Error(`remote evaluation failed: ${value}`));
      });
    });
  }

  /** Evaluate Elixir `expr` on the outside node (`target` is bound); resolves to inspect(result). */
  eval(expr) {
    const id = String(this.next++);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(`${id}\t${expr.replace(/\n/g, ' ')}\n`);
    });
  }

  /** `:rpc.call(target, mod, fun, args)` with Elixir source for mod and args. */
  rpc(mod, fun, args = '[]', timeout = ':infinity') {
    return this.eval(`:rpc.call(target, ${mod}, :${fun}, ${args}, ${timeout})`);
  }

  stop() {
    killGroup(this.child);
  }
}

/** A private, compiled copy of the kv fixture running as a node, and the outside node. */
async function startKv() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-dapt-'));
  copyDir(path.join(REPO, 'tests', 'fixtures', 'kv'), dir);
  run('mix', ['compile'], { cwd: dir });
  const sname = token('kv_dapt_');
  const cookie = token('c');
  const node = `${sname}@${shortHost()}`;
  // The node halts when our end of its stdin closes, should this process die unannounced.
  const child = spawnGroup(
    'elixir',
    ['--sname', sname, '--cookie', cookie, '-e', WATCHDOG, '-S', 'mix', 'run', '--no-halt'],
    { cwd: dir, stdio: ['pipe', 'ignore', 'inherit'] },
  );
  const remote = new Remote(node, cookie);
  await remote.ready;
  const up = await remote.eval('await.(60_000)');
  if (up !== ':ok') throw new Error(`node ${node} did not start: ${up}`);
  return {
    dir,
    node,
    cookie,
    remote,
    stop() {
      remote.stop();
      killGroup(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { REPO, startKv };
