// Filling in `orrery` debug configurations (launch.json) before the adapter starts. Pure,
// unit-tested; the cookie is added to the in-memory configuration only, never written.

import type { ServerSettings } from "./settings";

export interface OrreryDebugConfig {
  type: string;
  request: string;
  name: string;
  node?: string;
  cookie?: string;
  cookieFile?: string;
  cwd?: string;
  record?: boolean;
  recordLimit?: number;
  [key: string]: unknown;
}

export const DEFAULT_RECORD_LIMIT = 10000;

export function initialLaunchConfig(): OrreryDebugConfig {
  return { type: "orrery", request: "launch", name: "Orrery: run the mix app", cwd: "${workspaceFolder}", record: true };
}

export type Resolved = { ok: true; config: OrreryDebugConfig } | { ok: false; message: string };

/**
 * Complete a configuration. `raw` may be empty (F5 without launch.json): then it becomes a
 * launch of the workspace app, or an attach to the node Orrery is attached to.
 */
export function resolveDebugConfig(
  raw: Partial<OrreryDebugConfig>,
  ctx: { folder?: string; settings: ServerSettings; cookieFor?: (node: string) => string | undefined },
): Resolved {
  let cfg: OrreryDebugConfig;
  if (!raw.type && !raw.request && !raw.name) {
    cfg = ctx.settings.node
      ? { type: "orrery", request: "attach", name: `Orrery: attach to ${ctx.settings.node}`, node: ctx.settings.node }
      : initialLaunchConfig();
  } else {
    cfg = { type: "orrery", request: "launch", name: "Orrery", ...raw } as OrreryDebugConfig;
  }
  if (cfg.request !== "launch" && cfg.request !== "attach") {
    return { ok: false, message: `Orrery: debug request must be "launch" or "attach", not ${JSON.stringify(cfg.request)}` };
  }
  if (cfg.cwd === undefined || cfg.cwd === "") cfg.cwd = ctx.folder ?? "${workspaceFolder}";
  if (cfg.record === undefined) cfg.record = true;
  if (cfg.recordLimit === undefined) cfg.recordLimit = DEFAULT_RECORD_LIMIT;
  if (typeof cfg.recordLimit !== "number" || cfg.recordLimit <= 0) {
    return { ok: false, message: "Orrery: recordLimit must be a positive number of events" };
  }
  if (cfg.request === "attach") {
    const node = (cfg.node ?? "").trim() || ctx.settings.node;
    if (!node) {
      return {
        ok: false,
        message: 'Orrery: an "attach" configuration needs "node" (name@host). Set it in launch.json or run "Orrery: Attach to Node…".',
      };
    }
    if (!/^[^@\s]+@[^@\s]+$/.test(node)) {
      return { ok: false, message: `Orrery: bad node name ${JSON.stringify(node)}: expected name@host, e.g. kv@localhost` };
    }
    cfg.node = node;
  }
  if (cfg.request === "launch") {
    // Orrery starts the node with a random cookie; a node here would mean "attach".
    delete cfg.node;
    delete cfg.cookie;
  } else if (!cfg.cookie) {
    const c = ctx.cookieFor?.(cfg.node as string) ?? (cfg.node === ctx.settings.node ? ctx.settings.cookie : undefined);
    if (c) cfg.cookie = c;
    else {
      delete cfg.cookie;
      if (!cfg.cookieFile && ctx.settings.cookieFile) cfg.cookieFile = ctx.settings.cookieFile;
    }
  }
  return { ok: true, config: cfg };
}
