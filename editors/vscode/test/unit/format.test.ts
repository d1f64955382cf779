import { test } from "node:test";
import assert from "node:assert/strict";
import {
  firstModule,
  formatBytes,
  moduleAt,
  moduleAtLine,
  processLabel,
  stateDocument,
  stateUri,
  statusView,
  supLabel,
  targetFromQuery,
} from "../../src/format";

test("status bar: attached shows the node(s)", () => {
  const v = statusView({
    attached: true,
    status: { state: "attached" },
    mode: "attach",
    allowWrites: true,
    nodes: [
      { name: "kv@vm", otp: "25", elixir: "1.14.0", agent: true },
      { name: "peer@vm", otp: "25", elixir: "1.14.0", agent: true },
    ],
  });
  assert.equal(v.text, "$(pulse) kv@vm +1");
  assert.equal(v.level, "ok");
  assert.match(v.tooltip, /OTP 25, Elixir 1\.14\.0/);
  assert.match(v.tooltip, /peer@vm/);
});

test("status bar: last swap is shown", () => {
  const at = new Date(2024, 0, 1, 12, 34, 56);
  const v = statusView({ attached: true, nodes: [{ name: "kv@vm" }] }, { lastSwap: { module: "KV.Bucket", at, ok: true } });
  assert.equal(v.text, "$(pulse) kv@vm · swap 12:34:56");
  assert.match(v.tooltip, /Last swap: KV\.Bucket at 12:34:56/);
});

test("status bar: detached with a reason, stopped", () => {
  const v = statusView({ attached: false, status: { state: "detached", reason: "cookie rejected by kv@vm" }, nodes: [] });
  assert.equal(v.text, "$(warning) Orrery: detached");
  assert.match(v.tooltip, /cookie rejected/);
  assert.equal(v.level, "warning");
  assert.equal(statusView(undefined, { stopped: true }).text, "$(debug-disconnect) Orrery: detached");
  assert.equal(statusView({ attached: false, status: { state: "attaching" } }).level, "idle");
});

test("state document", () => {
  const text = stateDocument({
    target: "KV.Bucket",
    processes: [{ node: "kv@vm", pid: "#PID<0.148.0>", state: "%{a: 1}", stateAvailable: true, messageQueueLen: 0, memory: 2848, reductions: 40 }],
  });
  assert.match(text, /^# Live state of KV\.Bucket/);
  assert.match(text, /# #PID<0\.148\.0> on kv@vm · queue 0 · memory 2\.8 KB · reductions 40/);
  assert.match(text, /^%\{a: 1\}$/m);
  assert.match(stateDocument({ target: "x", processes: [{ node: "n", stateAvailable: false }] }), /state not available/);
});

test("state URIs round-trip the target", () => {
  for (const t of ["KV.Bucket", "#PID<0.148.0>", ":kv_table"]) {
    const u = stateUri(t);
    assert.ok(u.path.endsWith(".exs"));
    assert.ok(!/[#<>]/.test(u.path));
    assert.equal(targetFromQuery(u.query), t);
  }
});

test("labels", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(3174), "3.1 KB");
  assert.equal(formatBytes(undefined), "?");
  assert.deepEqual(supLabel({ name: "KV.Supervisor", pid: "#PID<0.147.0>", type: "supervisor", module: "Supervisor.Default", childCount: 2 }), {
    label: "KV.Supervisor",
    description: "#PID<0.147.0> · 2 children",
    kind: "supervisor",
  });
  assert.deepEqual(supLabel({ name: "Logger", pid: "#PID<0.138.0>", type: "worker", module: ":gen_event" }), {
    label: "Logger",
    description: "#PID<0.138.0> · :gen_event",
    kind: "worker",
  });
  assert.equal(processLabel({ name: ":rex", pid: "#PID<0.53.0>", memory: 2048, messageQueueLen: 3 }).description, "#PID<0.53.0> · 2.0 KB · queue 3");
});

test("module under the cursor and around a line", () => {
  const line = "defmodule KV.Bucket do";
  assert.equal(moduleAt(line, 12), "KV.Bucket");
  assert.equal(moduleAt(line, 3), undefined);
  assert.equal(moduleAt("    B.get(:x)", 4), "B");
  const src = [
    "defmodule KV.Calc do",
    "  def add(a, b), do: a + b",
    "  defmodule Helpers do",
    "    def twice(x), do: x",
    "  end",
    "  def after_helpers, do: 1",
    "end",
  ].join("\n");
  assert.equal(moduleAtLine(src, 1), "KV.Calc");
  assert.equal(moduleAtLine(src, 3), "KV.Calc.Helpers");
  assert.equal(moduleAtLine(src, 5), "KV.Calc");
  assert.equal(firstModule(src), "KV.Calc");
});
