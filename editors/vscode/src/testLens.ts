// "Debug test" code lenses in ExUnit files: the server's lenses carry the client-side command
// `orrery.debugTest` with a ready launch configuration (`mix test file:line` under
// `orrery dap`). Pure, unit-tested: checking that argument, choosing its workspace folder,
// and picking the lens at the cursor for "Orrery: Debug Test at Cursor".

import type { OrreryDebugConfig } from "./debugConfig";

/** The command of the server's "Debug test" lenses (handled here, not by the server). */
export const DEBUG_TEST_COMMAND = "orrery.debugTest";

export type TestConfigCheck = { ok: true; config: OrreryDebugConfig } | { ok: false; message: string };

/** The lens argument as a debug configuration, or why it is not one. */
export function checkTestConfig(arg: unknown): TestConfigCheck {
  if (!arg || typeof arg !== "object" || Array.isArray(arg)) {
    return {
      ok: false,
      message: "Orrery: “Debug test” needs a launch configuration: use the code lens above a test, or run “Orrery: Debug Test at Cursor” in a *_test.exs file.",
    };
  }
  const c = arg as Record<string, unknown>;
  if (c.type !== "orrery" || (c.request !== "launch" && c.request !== "attach")) {
    return { ok: false, message: `Orrery: not an orrery debug configuration: ${JSON.stringify(arg).slice(0, 200)}` };
  }
  if (c.taskArgs !== undefined && !(Array.isArray(c.taskArgs) && c.taskArgs.every((a) => typeof a === "string"))) {
    return { ok: false, message: "Orrery: taskArgs of the test configuration must be a list of strings" };
  }
  const config = { ...c, name: typeof c.name === "string" && c.name ? c.name : "Orrery: debug test" } as OrreryDebugConfig;
  return { ok: true, config };
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/[/\\]+$/, "") : p;
}

/**
 * Index of the workspace folder holding `cwd` (the deepest when folders nest), or undefined
 * (then the session runs without a folder: `cwd` is absolute anyway).
 */
export function folderIndexFor(cwd: unknown, folders: readonly string[]): number | undefined {
  if (typeof cwd !== "string" || cwd === "") return undefined;
  const dir = trimSlash(cwd);
  let best: number | undefined;
  let bestLen = -1;
  folders.forEach((f, i) => {
    const root = trimSlash(f);
    const inside = dir === root || dir.startsWith(root.endsWith("/") ? root : `${root}/`);
    if (inside && root.length > bestLen) {
      best = i;
      bestLen = root.length;
    }
  });
  return best;
}

/** What the picker needs of a code lens: its (0-based) line and its command. */
export interface LensLike {
  line: number;
  command?: string;
  arguments?: unknown[];
}

/**
 * The "Debug test" lens for the cursor on `line` (0-based): the closest one at or above it
 * (a test, its describe, else the whole file), or undefined.
 */
export function nearestTestLens<L extends LensLike>(lenses: readonly L[], line: number): L | undefined {
  let best: L | undefined;
  for (const l of lenses) {
    if (l.command !== DEBUG_TEST_COMMAND || l.line > line) continue;
    if (!best || l.line > best.line) best = l;
  }
  return best;
}

/** With live hints off the live lenses go, but the "Debug test" lenses stay. */
export function keepLens(command: string | undefined, liveHints: boolean): boolean {
  return liveHints || command === DEBUG_TEST_COMMAND;
}
