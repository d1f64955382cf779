// Acceptance tests of `orrery dap` driven by Microsoft's DAP test client
// (@vscode/debugadapter-testsupport) against a real node running a private copy of
// tests/fixtures/kv. Calls into the node come from the outside: a separate hidden Elixir node
// doing :rpc.call, as another service would. Waits are on events and replies, never sleeps.
'use strict';

const { describe, it, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { DebugClient } = require('@vscode/debugadapter-testsupport');
const { REPO, startKv } = require('../lib/beam');

const ORRERY = process.env.ORRERY || path.join(REPO, 'target', 'release', 'orrery');
const T = { timeout: 90_000 };

/** DebugClient that runs `orrery dap` and tells when the configuration is done. */
class OrreryClient extends DebugClient {
  constructor() {
    // DebugClient spawns `runtime [executable]`: the binary and its subcommand.
    super(ORRERY, 'dap', 'orrery', {}, !!process.env.ORRERY_DAP_STDERR);
    this.defaultTimeout = 30_000;
    this.stopped = 0;
    this.on('stopped', () => this.stopped++);
  }

  async start() {
    await super.start();
    this.exited = new Promise((resolve) => this._adapterProcess.once('exit', resolve));
  }

  async configurationDoneRequest(args) {
    const r = await super.configurationDoneRequest(args);
    this.emit('configured');
    return r;
  }

  /** disconnect, and the adapter exits by itself. */
  async disconnect() {
    await this.disconnectRequest({});
    await this.exited;
  }
}

describe('orrery dap, driven by @vscode/debugadapter-testsupport', () => {
  let kv;
  let dc;
  let steps;
  let bucket;

  const md5 = (mod) => kv.remote.eval(`:rpc.call(target, ${mod}, :module_info, [:md5])`);
  const attach = async (extra = {}) => {
    await dc.initializeRequest();
    await Promise.all([
      dc.waitForEvent('initialized'),
      dc.attachRequest({ node: kv.node, cookie: kv.cookie, cwd: kv.dir, ...extra }),
    ]);
  };
  /** The first stopped event's thread and top frame, asserting reason and line. */
  const stoppedAt = async (reason, line, file = steps) => {
    const ev = dc.waitForEvent('stopped');
    const st = await dc.assertStoppedLocation(reason, { path: file, line });
    return { threadId: (await ev).body.threadId, frames: st.body.stackFrames };
  };
  const locals = async (frameId) => {
    const scopes = (await dc.scopesRequest({ frameId })).body.scopes;
    assert.equal(scopes[0].name, 'Locals');
    const vars = await dc.variablesRequest({ variablesReference: scopes[0].variablesReference });
    return Object.fromEntries(vars.body.variables.map((v) => [v.name, v]));
  };

  before(async () => {
    if (!fs.existsSync(ORRERY)) throw new Error(`${ORRERY} is missing: cargo build --release`);
    kv = await startKv();
    kv.dir = fs.realpathSync(kv.dir);
    steps = path.join(kv.dir, 'lib', 'kv', 'steps.ex');
    bucket = path.join(kv.dir, 'lib', 'kv', 'bucket.ex');
    // Load the modules as the app would.
    assert.equal(await kv.remote.rpc('KV.Steps', 'run', '[0]'), '3');
    assert.equal(
      await kv.remote.rpc('GenServer', 'call', '[KV.Bucket, {:put, :config, %{retries: 3, hosts: ["a", "b"]}}]'),
      ':ok',
    );
  });

  after(() => kv && kv.stop());

  beforeEach(async () => {
    dc = new OrreryClient();
    await dc.start();
  });

  afterEach(async () => {
    if (dc._adapterProcess && dc._adapterProcess.exitCode === null) await dc.stop();
  });

  it('hits a breakpoint in a GenServer callback called from another node; stack, scopes, variables, evaluate', T, async () => {
    // handle_call({:put, ...}) is called from the outside once the configuration is done.
    let call;
    dc.once('configured', () => {
      call = kv.remote.rpc('GenServer', 'call', '[KV.Bucket, {:put, :user, 42}, :infinity]');
    });
    // Line 34 is the `def` head: the breakpoint moves to the body's first line, 35.
    const [, , st] = await dc.hitBreakpoint(
      { node: kv.node, cookie: kv.cookie, cwd: kv.dir },
      { path: bucket, line: 34 },
      { path: bucket, line: 35 },
      { path: bucket, line: 35 },
    );
    const frames = st.body.stackFrames;
    assert.equal(frames[0].name, 'KV.Bucket.handle_call/3');
    assert.match(frames[1].name, /gen_server/, JSON.stringify(frames));

    const threads = (await dc.threadsRequest()).body.threads.filter(
      (t) => !t.name.endsWith('(running)') && !t.name.startsWith('Any process'),
    );
    assert.equal(threads.length, 1, 'only the paused process is a stopped thread');
    assert.match(threads[0].name, /KV\.Bucket/);
    assert.match(threads[0].name, new RegExp(kv.node));

    // Everything else keeps running: another module answers, the ETS table is readable;
    // the paused GenServer itself does not answer.
    assert.equal(await kv.remote.rpc('KV.Calc', 'add', '[2, 3]'), '5');
    assert.equal(await kv.remote.rpc(':ets', 'lookup', '[:kv_table, :alpha]'), '[alpha: 1]');
    assert.match(await kv.remote.rpc('GenServer', 'call', '[KV.Bucket, :state, 200]'), /badrpc.*timeout/);

    // Locals: the callback's arguments, and the GenServer state as an expandable map.
    const l = await locals(frames[0].id);
    assert.equal(l.key.value, ':user');
    assert.equal(l.value.value, '42');
    assert.equal(l.state.type, 'map');
    assert.ok(l.state.variablesReference > 0, 'state expands');
    const state = (await dc.variablesRequest({ variablesReference: l.state.variablesReference })).body.variables;
    assert.deepEqual(state.map((v) => v.name), ['config']);
    const config = (await dc.variablesRequest({ variablesReference: state[0].variablesReference })).body.variables;
    const byName = Object.fromEntries(config.map((v) => [v.name, v]));
    assert.equal(byName.retries.value, '3');
    assert.equal(byName.hosts.value, '["a", "b"]');
    // Paged: the second element of the list only.
    const hosts = await dc.variablesRequest({ variablesReference: byName.hosts.variablesReference, start: 1, count: 1 });
    assert.deepEqual(hosts.body.variables.map((v) => v.value), ['"b"']);

    // The Process scope says which process this is.
    const scopes = (await dc.scopesRequest({ frameId: frames[0].id })).body.scopes;
    assert.deepEqual(scopes.map((s) => s.name), ['Locals', 'Process']);
    const proc = (await dc.variablesRequest({ variablesReference: scopes[1].variablesReference })).body.variables;
    assert.ok(proc.some((v) => v.name === 'registered_name' && /KV\.Bucket/.test(v.value)), JSON.stringify(proc));

    // Evaluate in the frame, with its bindings; the result expands too.
    const ev = await dc.evaluateRequest({ expression: 'Map.put(state, key, value)', frameId: frames[0].id, context: 'repl' });
    assert.equal(ev.body.result, '%{config: %{hosts: ["a", "b"], retries: 3}, user: 42}');
    const kids = (await dc.variablesRequest({ variablesReference: ev.body.variablesReference })).body.variables;
    assert.deepEqual(kids.map((v) => v.name).sort(), ['config', 'user']);
    // Hover only reads variables: a variable answers, a call with side effects does not run.
    const hover = await dc.evaluateRequest({ expression: 'key', frameId: frames[0].id, context: 'hover' });
    assert.equal(hover.body.result, ':user');
    await assert.rejects(
      dc.evaluateRequest({ expression: 'KV.Bucket.put(:x, 1)', frameId: frames[0].id, context: 'hover' }),
    );

    await dc.continueRequest({ threadId: threads[0].id });
    assert.equal(await call, ':ok');
    assert.equal(
      await kv.remote.rpc('KV.Bucket', 'state'),
      '%{config: %{hosts: ["a", "b"], retries: 3}, user: 42}',
    );
  });

  it('next, stepIn and stepOut through KV.Steps', T, async () => {
    await attach();
    const bps = await dc.setBreakpointsRequest({ source: { path: steps }, breakpoints: [{ line: 5 }] });
    assert.equal(bps.body.breakpoints[0].verified, true);
    await dc.configurationDoneRequest();
    const stop = stoppedAt('breakpoint', 5);
    const call = kv.remote.rpc('KV.Steps', 'run', '[1]');
    const { threadId, frames } = await stop;
    assert.equal(frames[0].name, 'KV.Steps.run/1');
    assert.equal((await locals(frames[0].id)).n.value, '1');

    // next: line 6, over nothing yet.
    await Promise.all([dc.nextRequest({ threadId }), dc.assertStoppedLocation('step', { path: steps, line: 6 })]);
    // stepIn: into double/1, called from run/1.
    const [, into] = await Promise.all([
      dc.stepInRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 12 }),
    ]);
    assert.equal(into.body.stackFrames[0].name, 'KV.Steps.double/1');
    assert.equal(into.body.stackFrames[1].name, 'KV.Steps.run/1');
    assert.equal((await locals(into.body.stackFrames[0].id)).x.value, '2');
    // stepOut: back in run/1 after the call, with its result bound.
    const [, out] = await Promise.all([
      dc.stepOutRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 7 }),
    ]);
    assert.equal(out.body.stackFrames[0].name, 'KV.Steps.run/1');
    assert.equal((await locals(out.body.stackFrames[0].id)).b.value, '4');
    // next over line 7, then continue to the end.
    await Promise.all([dc.nextRequest({ threadId }), dc.assertStoppedLocation('step', { path: steps, line: 8 })]);
    await dc.continueRequest({ threadId });
    assert.equal(await call, '6');
  });

  it('conditional, hit-count and log point breakpoints', T, async () => {
    await attach();
    await dc.configurationDoneRequest();
    const set = async (bp) => {
      const r = await dc.setBreakpointsRequest({ source: { path: steps }, breakpoints: [bp] });
      assert.equal(r.body.breakpoints[0].verified, true, JSON.stringify(r.body));
    };
    const before = () => dc.stopped;

    // A false condition: the call runs through (it would block if it paused).
    await set({ line: 12, condition: 'x > 100' });
    let n = before();
    assert.equal(await kv.remote.rpc('KV.Steps', 'run', '[1]'), '6');
    assert.equal(dc.stopped, n, 'no stop when the condition is false');
    // A true one stops, with the bindings the condition saw.
    await set({ line: 12, condition: 'x == 3' });
    let stop = stoppedAt('breakpoint', 12);
    let call = kv.remote.rpc('KV.Steps', 'run', '[2]');
    let s = await stop;
    const ev = await dc.evaluateRequest({ expression: 'x * 100', frameId: s.frames[0].id, context: 'watch' });
    assert.equal(ev.body.result, '300');
    await dc.continueRequest({ threadId: s.threadId });
    assert.equal(await call, '9');

    // Hit count 2: the first call runs through, the second stops.
    await set({ line: 12, hitCondition: '2' });
    n = before();
    assert.equal(await kv.remote.rpc('KV.Steps', 'run', '[1]'), '6');
    assert.equal(dc.stopped, n, 'first hit does not stop');
    stop = stoppedAt('breakpoint', 12);
    call = kv.remote.rpc('KV.Steps', 'run', '[1]');
    s = await stop;
    await dc.continueRequest({ threadId: s.threadId });
    assert.equal(await call, '6');

    // Log point: prints with the bindings interpolated, does not stop.
    await set({ line: 13, logMessage: 'y is {y}, x was {x}' });
    n = before();
    const out = dc.assertOutput('console', 'y is 6, x was 3\n');
    assert.equal(await kv.remote.rpc('KV.Steps', 'run', '[2]'), '9');
    await out;
    assert.equal(dc.stopped, n, 'log points do not stop');
  });

  it('records, steps back and reverse-continues (record: true), then forward to live', T, async () => {
    const caps = await dc.initializeRequest();
    assert.equal(caps.body.supportsStepBack, true);
    await Promise.all([
      dc.waitForEvent('initialized'),
      dc.attachRequest({ node: kv.node, cookie: kv.cookie, cwd: kv.dir, record: true, recordLimit: 1000 }),
    ]);
    await dc.setBreakpointsRequest({ source: { path: steps }, breakpoints: [{ line: 8 }] });
    await dc.configurationDoneRequest();
    const stop = stoppedAt('breakpoint', 8);
    const call = kv.remote.rpc('KV.Steps', 'run', '[1]');
    const { threadId } = await stop;

    // One step back: line 7, read-only, c not bound yet.
    let [, st] = await Promise.all([
      dc.stepBackRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 7 }),
    ]);
    assert.match(st.body.stackFrames[0].name, /recorded/);
    let l = await locals(st.body.stackFrames[0].id);
    assert.equal(l.a.value, '2');
    assert.equal(l.b.value, '4');
    assert.equal(l.c, undefined);
    // Back again: inside double/1, where y was 4; evaluate answers from there.
    [, st] = await Promise.all([
      dc.stepBackRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 13 }),
    ]);
    assert.equal((await locals(st.body.stackFrames[0].id)).y.value, '4');
    const ev = await dc.evaluateRequest({ expression: 'y * 10', frameId: st.body.stackFrames[0].id, context: 'repl' });
    assert.equal(ev.body.result, '40');

    // Reverse continue: no earlier hit, so the start of the recording; nothing before it.
    await Promise.all([
      dc.reverseContinueRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 5 }),
    ]);
    await assert.rejects(dc.stepBackRequest({ threadId }));

    // Forward through the recording (next skips double/1), then live again at line 8.
    await Promise.all([dc.nextRequest({ threadId }), dc.assertStoppedLocation('step', { path: steps, line: 6 })]);
    await Promise.all([dc.nextRequest({ threadId }), dc.assertStoppedLocation('step', { path: steps, line: 7 })]);
    [, st] = await Promise.all([
      dc.nextRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 8 }),
    ]);
    assert.doesNotMatch(st.body.stackFrames[0].name, /recorded/);
    await dc.continueRequest({ threadId });
    assert.equal(await call, '6');

    const tl = await dc.customRequest('orrery/timeline', { module: 'KV.Steps' });
    const lines = tl.body.events.filter((e) => e.kind === 'line').map((e) => e.line);
    assert.deepEqual(lines.slice(0, 6), [5, 6, 12, 13, 7, 8]);
    const returns = tl.body.events.filter((e) => e.kind === 'return').map((e) => [e.function, e.result]);
    assert.deepEqual(returns.slice(0, 2), [['double/1', '4'], ['run/1', '6']]);
  });

  it('disconnect while paused resumes the process and restores the pristine code', T, async () => {
    const pristine = { steps: await md5('KV.Steps'), bucket: await md5('KV.Bucket') };
    const loaded = () => kv.remote.eval(':rpc.call(target, :erlang, :loaded, []) |> Enum.sort()');
    const loadedBefore = await loaded();
    await attach();
    await dc.setBreakpointsRequest({ source: { path: steps }, breakpoints: [{ line: 6 }] });
    await dc.setBreakpointsRequest({ source: { path: bucket }, breakpoints: [{ line: 39 }] });
    await dc.configurationDoneRequest();
    assert.notEqual(await md5('KV.Steps'), pristine.steps, 'instrumented code is loaded');
    assert.notEqual(await md5('KV.Bucket'), pristine.bucket, 'instrumented code is loaded');
    const stop = stoppedAt('breakpoint', 6);
    const call = kv.remote.rpc('KV.Steps', 'run', '[1]');
    await stop;

    await dc.disconnect();
    assert.equal(await call, '6', 'the paused process ran to the end');
    assert.equal(await md5('KV.Steps'), pristine.steps);
    assert.equal(await md5('KV.Bucket'), pristine.bucket);
    assert.equal(await kv.remote.rpc(':code', 'is_loaded', '[:orrery_dbg_v1]'), 'false');
    assert.equal(await kv.remote.rpc(':code', 'is_loaded', '[:orrery_dbg_v1_armed]'), 'false');
    assert.equal(await loaded(), loadedBefore, 'the same modules are loaded as before attach');
    assert.equal(await kv.remote.eval(`:rpc.call(target, :persistent_term, :get, [{:orrery_dbg_v1, KV.Steps}, :none])`), ':none');
  });

  it('launch without a node starts the app itself, breaks in it, and stops it on disconnect', T, async () => {
    await Promise.all([dc.waitForEvent('initialized'), dc.launch({ cwd: kv.dir })]);
    await dc.setBreakpointsRequest({ source: { path: steps }, breakpoints: [{ line: 6 }] });
    await dc.configurationDoneRequest();
    // Evaluate without a frame runs on the launched node: start a process that hits the line.
    const stop = stoppedAt('breakpoint', 6);
    const ev = await dc.evaluateRequest({ expression: 'Task.start(fn -> KV.Steps.run(1) end); node()', context: 'repl' });
    const launched = ev.body.result.replace(/^:"?|"$/g, '');
    assert.notEqual(launched, kv.node);
    const { threadId } = await stop;
    const [, st] = await Promise.all([
      dc.stepInRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: steps, line: 12 }),
    ]);
    assert.equal(st.body.stackFrames[0].name, 'KV.Steps.double/1');
    await dc.continueRequest({ threadId });
    await dc.disconnect();
    const names = await kv.remote.eval(':erl_epmd.names() |> elem(1) |> Enum.map(&to_string(elem(&1, 0)))');
    assert.ok(!names.includes(`"${launched.split('@')[0]}"`), `${launched} is stopped: ${names}`);
  });
});
