import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyServerMessage, errorText, parseSwapMessage, unsupportedCommandText } from "../../src/messages";

test("wrong cookie offers to set it", () => {
  const c = classifyServerMessage("Orrery: cookie rejected by kv@vm: set `cookie` or `cookieFile` to the node's cookie (default ~/.erlang.cookie)");
  assert.equal(c.kind, "cookie");
  assert.equal(c.actions[0], "Set Cookie…");
  assert.match(c.text, /^Orrery: cookie rejected by kv@vm/);
});

test("no such node offers to pick one", () => {
  const c = classifyServerMessage("Orrery: no node named kv on vm (registered: other)");
  assert.equal(c.kind, "noNode");
  assert.equal(c.actions[0], "Attach to Node…");
});

test("no EPMD offers to pick or retry", () => {
  const c = classifyServerMessage("no EPMD on vm: no Erlang node is running there (start your app with `--sname NAME`)");
  assert.equal(c.kind, "noEpmd");
  assert.match(c.text, /^Orrery: no EPMD/);
  assert.ok(c.actions.includes("Retry"));
});

test("detach and other messages", () => {
  assert.equal(classifyServerMessage("Orrery detached: node kv@vm went down. Re-attaching when the node is back.").kind, "detached");
  assert.equal(classifyServerMessage("Orrery: mix compile failed:\n** (SyntaxError)").kind, "compile");
  assert.equal(classifyServerMessage("something else").kind, "other");
});

test("unsupported server commands are explained", () => {
  assert.match(unsupportedCommandText("hot swap", "unknown command orrery.hotSwap"), /does not support hot swap yet/);
  assert.match(unsupportedCommandText("hot swap", "compile error in lib/a.ex"), /hot swap failed: compile error/);
  assert.equal(errorText({ code: -32602, message: "unknown command x" }), "unknown command x");
  assert.equal(errorText("plain"), "plain");
});

test("hot swap summaries are recognised (for the status bar's last swap)", () => {
  assert.deepEqual(parseSwapMessage("KV.Bucket swapped on 1 node in 2 ms, 0 processes migrated"), {
    modules: "KV.Bucket",
    verb: "swapped",
    nodes: 1,
    text: "KV.Bucket swapped on 1 node in 2 ms, 0 processes migrated",
  });
  assert.equal(parseSwapMessage("KV.Calc, KV.Calc.Helpers rolled back on 2 nodes in 5 ms, 1 process migrated")?.modules, "KV.Calc, KV.Calc.Helpers");
  assert.equal(parseSwapMessage("Orrery attached to kv@vm"), undefined);
});
