import { test } from "node:test";
import assert from "node:assert/strict";
import { describeTarget, expandPath, serverSettings } from "../../src/settings";

test("empty strings are unset: no node means the embedded default", () => {
  const s = serverSettings({ node: "", cookie: "", cookieFile: "", allowWrites: null, refreshMs: 1000, liveCallTime: null });
  assert.equal(s.node, undefined);
  assert.equal(s.cookie, undefined);
  assert.equal(s.cookieFile, undefined);
  assert.equal(s.allowWrites, undefined);
  // Unset: the server decides (on where the node has trace sessions).
  assert.equal(s.liveCallTime, undefined);
  assert.equal(s.refreshMs, 1000);
  assert.deepEqual(s.inlayHints, { calls: true, processes: true, ets: true });
  assert.equal(describeTarget(s), "the workspace's mix app (started by Orrery)");
});

test("configured node and cookie are passed through", () => {
  const s = serverSettings({ node: " kv@host ", cookie: "secret", allowWrites: false, inlayHints: { calls: false } });
  assert.equal(s.node, "kv@host");
  assert.equal(s.cookie, "secret");
  assert.equal(s.allowWrites, false);
  assert.deepEqual(s.inlayHints, { calls: false, processes: true, ets: true });
});

test("the attach choice overrides the configured node, with its own cookie", () => {
  const s = serverSettings({ node: "a@h", cookie: "ca" }, { node: "b@h" }, "cb");
  assert.equal(s.node, "b@h");
  assert.equal(s.cookie, "cb");
});

test("embedded choice drops the configured node and the cookie", () => {
  const s = serverSettings({ node: "a@h", cookie: "ca" }, { embedded: true });
  assert.equal(s.node, undefined);
  assert.equal(s.cookie, undefined);
});

test("refreshMs is clamped and rounded", () => {
  assert.equal(serverSettings({ refreshMs: 5 }).refreshMs, 100);
  assert.equal(serverSettings({ refreshMs: 250.4 }).refreshMs, 250);
});

test("paths expand ~ and ${workspaceFolder}", () => {
  assert.equal(expandPath("~/c", undefined, "/home/u"), "/home/u/c");
  assert.equal(expandPath("${workspaceFolder}/.cookie", "/ws", "/home/u"), "/ws/.cookie");
  assert.equal(serverSettings({ cookieFile: "${workspaceFolder}/k" }, {}, undefined, "/ws").cookieFile, "/ws/k");
});

test("staticFeatures: auto is off beside another Elixir language server, else the server's default", async () => {
  const { otherElixirServers, resolveStaticFeatures } = await import("../../src/settings");
  assert.equal(resolveStaticFeatures("auto", []), undefined);
  assert.equal(resolveStaticFeatures(undefined, []), undefined);
  assert.equal(resolveStaticFeatures("auto", ["JakeBecker.elixir-ls"]), "off");
  assert.equal(resolveStaticFeatures("on", ["JakeBecker.elixir-ls"]), "on");
  assert.equal(resolveStaticFeatures("off", []), "off");
  assert.equal(serverSettings({ staticFeatures: "auto" }, {}, undefined, undefined, ["lexical-lsp.lexical"]).staticFeatures, "off");
  assert.equal(serverSettings({ staticFeatures: "auto" }).staticFeatures, undefined);
  const others = otherElixirServers(
    [
      { id: "orrery.orrery", packageJSON: { activationEvents: ["onLanguage:elixir"], dependencies: { "vscode-languageclient": "9" } } },
      { id: "JakeBecker.elixir-ls" },
      { id: "someone.elixir-syntax", packageJSON: { activationEvents: ["onLanguage:elixir"] } },
      { id: "someone.next-elixir-ls", packageJSON: { activationEvents: ["onLanguage:elixir"], dependencies: { "vscode-languageclient": "9" } } },
      { id: "ms-python.python", packageJSON: { activationEvents: ["onLanguage:python"], dependencies: { "vscode-languageclient": "9" } } },
    ],
    "orrery.orrery",
  );
  assert.deepEqual(others, ["JakeBecker.elixir-ls", "someone.next-elixir-ls"]);
});
