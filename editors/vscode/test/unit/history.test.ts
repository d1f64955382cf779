import { test } from "node:test";
import assert from "node:assert/strict";
import {
  historyPath,
  mdCode,
  relMs,
  sessionProblem,
  stateHistoryMarkdown,
  timelineArgs,
  timelineMarkdown,
  valueHistoryMarkdown,
  wordAt,
} from "../../src/history";

const rows = (md: string) => md.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| seq"));

test("timeline: a row per event, relative ms, function:line, bindings; returns as → result", () => {
  const md = timelineMarkdown(
    {
      total: 3,
      events: [
        { seq: 10, timeUs: 1_000_000, node: "kv@h", pid: "#PID<0.150.0>", module: "KV.Steps", function: "run/1", line: 5, depth: 0, kind: "line", bindings: { x: "1" } },
        { seq: 11, timeUs: 1_001_500, node: "kv@h", pid: "#PID<0.150.0>", module: "KV.Steps", function: "run/1", line: 6, depth: 0, kind: "line", bindings: { x: "1", y: "[1, 2]" } },
        { seq: 12, timeUs: 1_002_250, node: "kv@h", pid: "#PID<0.150.0>", module: "KV.Steps", function: "run/1", line: 7, depth: 0, kind: "return", bindings: {}, result: "{:ok, 3}" },
      ],
    },
    { module: "KV.Steps" },
  );
  assert.match(md, /^# Orrery timeline — KV\.Steps\n/);
  assert.match(md, /\| seq \| time \| pid \| function:line \| bindings \/ result \|/);
  const r = rows(md);
  assert.equal(r.length, 3);
  assert.equal(r[0], "| 10 | +0.000 ms | #PID<0.150.0> | run/1:5 | `x = 1` |");
  assert.equal(r[1], "| 11 | +1.500 ms | #PID<0.150.0> | run/1:6 | `x = 1, y = [1, 2]` |");
  assert.equal(r[2], "| 12 | +2.250 ms | #PID<0.150.0> | run/1:7 | → `{:ok, 3}` |");
  assert.match(md, /3 events/);
});

test("timeline: other modules are named, pages say which events, nested calls indented", () => {
  const md = timelineMarkdown(
    {
      total: 2500,
      events: [{ seq: 2000, timeUs: 5, pid: "#PID<0.1.0>", module: "KV.Calc", function: "add/2", line: 3, depth: 2, kind: "line", bindings: {} }],
    },
    { offset: 1500 },
  );
  assert.match(md, /events 1501–1501 of 2500/);
  assert.match(md, /&nbsp;&nbsp;&nbsp;&nbsp;KV\.Calc\.add\/2:3 \|/);
});

test("timeline: nothing recorded says why", () => {
  const md = timelineMarkdown({ total: 0, events: [] }, { module: "KV.Steps" });
  assert.match(md, /Nothing recorded/);
  assert.match(md, /"record": true/);
  assert.equal(rows(md).length, 0);
});

test("cells: pipes escaped, newlines joined, long text cut, backticks fenced", () => {
  assert.equal(mdCode("a | b"), "`a \\| b`");
  assert.equal(mdCode("%{\n  a: 1\n}"), "`%{ a: 1 }`");
  const long = mdCode("x".repeat(500));
  assert.ok(long.length < 200 && long.endsWith("…`"));
  assert.equal(mdCode("~c`x`"), "`` ~c`x` ``");
  assert.equal(mdCode(undefined), "");
  // A table row stays one row whatever the value holds.
  const md = timelineMarkdown({ total: 1, events: [{ seq: 1, timeUs: 0, pid: "p", function: "f/0", line: 1, kind: "return", result: "a\n|b" }] });
  assert.equal(rows(md).length, 1);
  assert.equal(rows(md)[0], "| 1 | +0.000 ms | p | f/0:1 | → `a \\|b` |");
});

test("relative time", () => {
  assert.equal(relMs(1234, 1000), "+0.234 ms");
  assert.equal(relMs(NaN, 0), "?");
});

test("state history: callback, message, state before → after, returned", () => {
  const md = stateHistoryMarkdown({
    module: "KV.Bucket",
    history: [
      { seq: 3, timeUs: 100, pid: "#PID<0.140.0>", node: "kv@h", callback: "handle_call/3", message: { request: "{:put, :a, 1}" }, stateBefore: "%{}", stateAfter: "%{a: 1}", returned: "{:reply, :ok, %{a: 1}}", line: 20 },
      { seq: 9, timeUs: 2100, pid: "#PID<0.140.0>", node: "kv@h", callback: "handle_call/3", message: { request: "{:get, :a}" }, stateBefore: "%{a: 1}", stateAfter: "%{a: 1}", line: 24 },
      { seq: 12, timeUs: 3100, pid: "#PID<0.140.0>", node: "kv@h", callback: "handle_cast/2", message: { msg: ":reset", extra: "1" }, stateBefore: "%{a: 1}", stateAfter: null },
    ],
  });
  assert.match(md, /^# Orrery state history — KV\.Bucket\n/);
  assert.match(md, /\| callback \| message \| state before → state after \| returned \|/);
  const r = rows(md);
  assert.equal(r.length, 3);
  assert.equal(r[0], "| 3 | +0.000 ms | #PID<0.140.0> | handle_call/3:20 | `{:put, :a, 1}` | `%{}` → `%{a: 1}` | `{:reply, :ok, %{a: 1}}` |");
  assert.equal(r[1], "| 9 | +2.000 ms | #PID<0.140.0> | handle_call/3:24 | `{:get, :a}` | `%{a: 1}` (unchanged) |  |");
  assert.match(r[2], /`msg = :reset, extra = 1` \| `%\{a: 1\}` → \? \|/);
});

test("state history: empty says what it needs", () => {
  const md = stateHistoryMarkdown({ module: "KV.Bucket", history: [] });
  assert.match(md, /No recorded callback of KV\.Bucket/);
  assert.match(md, /breakpoint/);
});

test("value history: each value with where and the other bindings", () => {
  const md = valueHistoryMarkdown({
    variable: "acc",
    changes: [
      { seq: 4, timeUs: 10, pid: "#PID<0.9.0>", node: "kv@h", module: "KV.Steps", function: "sum/2", line: 8, value: "0", with: { x: "1" } },
      { seq: 7, timeUs: 1010, pid: "#PID<0.9.0>", node: "kv@h", module: "KV.Steps", function: "sum/2", line: 8, value: "1", with: {} },
    ],
  });
  assert.match(md, /^# Orrery value history — `acc`\n/);
  const r = rows(md);
  assert.equal(r.length, 2);
  assert.equal(r[0], "| 4 | +0.000 ms | #PID<0.9.0> | KV.Steps.sum/2:8 | `0` | `x = 1` |");
  assert.equal(r[1], "| 7 | +1.000 ms | #PID<0.9.0> | KV.Steps.sum/2:8 | `1` |  |");
  assert.match(valueHistoryMarkdown({ variable: "zz", changes: [] }), /No recorded value of `zz`/);
});

test("session check: none, another debugger, an Orrery session", () => {
  assert.match(sessionProblem(undefined) ?? "", /no active debug session/);
  assert.match(sessionProblem({ type: "node", name: "Launch app" }) ?? "", /"Launch app" is of type "node"/);
  assert.equal(sessionProblem({ type: "orrery", name: "Attach" }), undefined);
});

test("timeline input: module, pid or everything", () => {
  assert.deepEqual(timelineArgs(" KV.Steps "), { module: "KV.Steps" });
  assert.deepEqual(timelineArgs("#PID<0.150.0>"), { pid: "#PID<0.150.0>" });
  assert.deepEqual(timelineArgs("<0.150.0>"), { pid: "#PID<0.150.0>" });
  assert.deepEqual(timelineArgs(""), {});
});

test("variable under the cursor", () => {
  const line = "    {:reply, state.count, Map.put(state, :k, acc_1)}";
  assert.equal(wordAt(line, line.indexOf("state") + 2), "state");
  assert.equal(wordAt(line, line.indexOf("acc_1") + 5), "acc_1");
  assert.equal(wordAt(line, line.indexOf("reply") + 1), undefined); // an atom
  assert.equal(wordAt(line, line.indexOf("put") + 1), undefined); // a remote call
  assert.equal(wordAt(line, line.indexOf("Map") + 1), undefined);
});

test("document paths", () => {
  assert.equal(historyPath("timeline", "KV.Steps"), "/timeline/KV.Steps.md");
  assert.equal(historyPath("timeline", "#PID<0.1.0>"), "/timeline/_PID_0.1.0_.md");
  assert.equal(historyPath("state", undefined), "/state/all.md");
});
