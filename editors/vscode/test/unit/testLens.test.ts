import { test } from "node:test";
import assert from "node:assert/strict";
import { DEBUG_TEST_COMMAND, checkTestConfig, folderIndexFor, keepLens, nearestTestLens } from "../../src/testLens";

// What the server's lens carries (server/src/lsp/test_lenses.rs).
const lensConfig = {
  type: "orrery",
  request: "launch",
  name: 'Debug test "stores"',
  cwd: "/abs/project",
  task: "test",
  taskArgs: ["test/kv_test.exs:12"],
};

test("the lens argument is started as given", () => {
  const r = checkTestConfig(lensConfig);
  assert.ok(r.ok);
  if (r.ok) assert.deepEqual(r.config, lensConfig);
});

test("no argument, or not an orrery configuration: an actionable message", () => {
  for (const bad of [undefined, null, "x", [lensConfig], { type: "node", request: "launch" }, { type: "orrery", request: "run" }]) {
    const r = checkTestConfig(bad);
    assert.equal(r.ok, false, JSON.stringify(bad));
  }
  const none = checkTestConfig(undefined);
  assert.ok(!none.ok && /code lens|Debug Test at Cursor/.test(none.message));
  assert.equal(checkTestConfig({ ...lensConfig, taskArgs: [12] }).ok, false);
});

test("a configuration without a name gets one (VS Code requires it)", () => {
  const { name: _n, ...rest } = lensConfig;
  void _n;
  const r = checkTestConfig(rest);
  assert.ok(r.ok && r.config.name === "Orrery: debug test");
});

test("the workspace folder: the deepest one holding cwd, none outside", () => {
  const folders = ["/abs", "/abs/project", "/abs/project-other", "/elsewhere"];
  assert.equal(folderIndexFor("/abs/project", folders), 1);
  assert.equal(folderIndexFor("/abs/project/", folders), 1);
  assert.equal(folderIndexFor("/abs/project/apps/kv", folders), 1);
  assert.equal(folderIndexFor("/abs/projectx", folders), 0);
  assert.equal(folderIndexFor("/tmp/x", folders), undefined);
  assert.equal(folderIndexFor(undefined, folders), undefined);
  assert.equal(folderIndexFor("/abs/project", []), undefined);
  assert.equal(folderIndexFor("/x", ["/"]), 0);
});

test("the lens for the cursor: closest test at or above it, else describe, else the file", () => {
  const lens = (line: number, command = DEBUG_TEST_COMMAND) => ({ line, command, arguments: [{ line }] });
  const lenses = [lens(0), lens(3), lens(5, "orrery.inspectState"), lens(4), lens(9), lens(14)];
  assert.equal(nearestTestLens(lenses, 4)?.line, 4);
  assert.equal(nearestTestLens(lenses, 6)?.line, 4); // the inspect lens on 5 is not a test
  assert.equal(nearestTestLens(lenses, 13)?.line, 9);
  assert.equal(nearestTestLens(lenses, 100)?.line, 14);
  assert.equal(nearestTestLens(lenses, 1)?.line, 0);
  assert.equal(nearestTestLens([lens(2)], 1), undefined);
  assert.equal(nearestTestLens([], 1), undefined);
});

test("live hints off keeps only the Debug test lenses", () => {
  assert.equal(keepLens(DEBUG_TEST_COMMAND, false), true);
  assert.equal(keepLens("orrery.inspectState", false), false);
  assert.equal(keepLens(undefined, false), false);
  assert.equal(keepLens("orrery.inspectState", true), true);
});
