import { test } from "node:test";
import assert from "node:assert/strict";
import { resolveDebugConfig } from "../../src/debugConfig";

test("F5 without launch.json: launch the mix app with a timeline", () => {
  const r = resolveDebugConfig({}, { folder: "/ws", settings: {} });
  assert.ok(r.ok);
  if (r.ok) {
    assert.equal(r.config.request, "launch");
    assert.equal(r.config.cwd, "${workspaceFolder}");
    assert.equal(r.config.record, true);
    assert.equal(r.config.recordLimit, 10000);
  }
});

test("F5 without launch.json while a node is configured: attach to it with its cookie", () => {
  const r = resolveDebugConfig({}, { folder: "/ws", settings: { node: "kv@vm", cookie: "c" } });
  assert.ok(r.ok);
  if (r.ok) {
    assert.equal(r.config.request, "attach");
    assert.equal(r.config.node, "kv@vm");
    assert.equal(r.config.cookie, "c");
    assert.equal(r.config.cwd, "/ws");
  }
});

test("attach needs a well-formed node", () => {
  const missing = resolveDebugConfig({ type: "orrery", request: "attach", name: "a" }, { settings: {} });
  assert.equal(missing.ok, false);
  if (!missing.ok) assert.match(missing.message, /needs "node"/);
  const bad = resolveDebugConfig({ type: "orrery", request: "attach", name: "a", node: "kv" }, { settings: {} });
  assert.equal(bad.ok, false);
});

test("the cookie comes from the callback (secret storage) and is not invented", () => {
  const r = resolveDebugConfig(
    { type: "orrery", request: "attach", name: "a", node: "b@vm", record: false },
    { settings: { node: "kv@vm", cookie: "for-kv" }, cookieFor: (n) => (n === "b@vm" ? "for-b" : undefined) },
  );
  assert.ok(r.ok);
  if (r.ok) {
    assert.equal(r.config.cookie, "for-b");
    assert.equal(r.config.record, false);
  }
  const none = resolveDebugConfig({ type: "orrery", request: "attach", name: "a", node: "b@vm" }, { settings: { node: "kv@vm", cookie: "for-kv" } });
  assert.ok(none.ok && none.config.cookie === undefined);
});

test("bad request and recordLimit", () => {
  assert.equal(resolveDebugConfig({ type: "orrery", request: "run", name: "x" }, { settings: {} }).ok, false);
  assert.equal(resolveDebugConfig({ type: "orrery", request: "launch", name: "x", recordLimit: 0 }, { settings: {} }).ok, false);
});

test("launch drops node and cookie (Orrery picks them); attach falls back to cookieFile", () => {
  const l = resolveDebugConfig({ type: "orrery", request: "launch", name: "l", node: "x@y", cookie: "c" }, { settings: {} });
  assert.ok(l.ok && l.config.node === undefined && l.config.cookie === undefined);
  const a = resolveDebugConfig({ type: "orrery", request: "attach", name: "a", node: "b@vm" }, { settings: { cookieFile: "/k" } });
  assert.ok(a.ok && a.config.cookie === undefined && a.config.cookieFile === "/k");
});
