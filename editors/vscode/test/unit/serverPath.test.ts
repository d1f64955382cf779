import { test } from "node:test";
import assert from "node:assert/strict";
import { resolveServerPath } from "../../src/serverPath";

const only = (...paths: string[]) => (p: string) => paths.includes(p);

test("the setting wins when it points at an executable", () => {
  const r = resolveServerPath({ setting: "/opt/orrery", envPath: "/usr/bin", isExecutable: only("/opt/orrery", "/usr/bin/orrery") });
  assert.deepEqual(r, { ok: true, path: "/opt/orrery", source: "setting" });
});

test("a bad setting is an error naming the path (no silent PATH fallback)", () => {
  const r = resolveServerPath({ setting: "/nope/orrery", envPath: "/usr/bin", isExecutable: only("/usr/bin/orrery") });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.message, /\/nope\/orrery/);
    assert.match(r.message, /cargo build --release/);
  }
});

test("relative settings resolve against the workspace folder", () => {
  const r = resolveServerPath({ setting: "bin/orrery", workspaceFolder: "/ws", isExecutable: only("/ws/bin/orrery") });
  assert.equal(r.ok && r.path, "/ws/bin/orrery");
});

test("PATH is searched in order", () => {
  const r = resolveServerPath({ envPath: "/a:/b:/c", platform: "linux", isExecutable: only("/b/orrery", "/c/orrery") });
  assert.deepEqual(r, { ok: true, path: "/b/orrery", source: "PATH" });
});

test("nothing found: a clear message with what to do", () => {
  const r = resolveServerPath({ envPath: "/a:/b", platform: "linux", isExecutable: () => false });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.message, /orrery\.serverPath/);
    assert.match(r.message, /PATH/);
    assert.deepEqual(r.tried, ["/a/orrery", "/b/orrery"]);
  }
});
