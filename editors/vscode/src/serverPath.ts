// Finding the `orrery` binary: `orrery.serverPath`, else `orrery` on PATH. Pure (the file
// system check is injected), unit-tested.

import * as fs from "node:fs";
import * as path from "node:path";
import { expandPath } from "./settings";

export type ServerPathResult =
  | { ok: true; path: string; source: "setting" | "PATH" }
  | { ok: false; message: string; tried: string[] };

export interface ResolveOptions {
  setting?: string;
  workspaceFolder?: string;
  envPath?: string;
  platform?: NodeJS.Platform;
  home?: string;
  isExecutable?: (p: string) => boolean;
}

export function isExecutableFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    if (process.platform === "win32") return true;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const INSTALL_HINT =
  "Build it with `cargo build --release` in the Orrery repository (gives target/release/orrery), " +
  "then set `orrery.serverPath` to that file or put it on PATH.";

export function resolveServerPath(opts: ResolveOptions): ServerPathResult {
  const isExec = opts.isExecutable ?? isExecutableFile;
  const platform = opts.platform ?? process.platform;
  const setting = (opts.setting ?? "").trim();
  if (setting !== "") {
    const p = expandPath(setting, opts.workspaceFolder, opts.home);
    const abs = path.isAbsolute(p) || opts.workspaceFolder === undefined ? p : path.join(opts.workspaceFolder, p);
    if (isExec(abs)) return { ok: true, path: abs, source: "setting" };
    return {
      ok: false,
      tried: [abs],
      message: `Orrery: orrery.serverPath is set to ${abs}, but that is not an executable file. ${INSTALL_HINT}`,
    };
  }
  const sep = platform === "win32" ? ";" : ":";
  const names = platform === "win32" ? ["orrery.exe", "orrery.cmd", "orrery"] : ["orrery"];
  const tried: string[] = [];
  for (const dir of (opts.envPath ?? "").split(sep)) {
    if (dir === "") continue;
    for (const n of names) {
      const candidate = path.join(dir, n);
      tried.push(candidate);
      if (isExec(candidate)) return { ok: true, path: candidate, source: "PATH" };
    }
  }
  return {
    ok: false,
    tried,
    message: `Orrery: the \`orrery\` language server was not found (orrery.serverPath is empty and there is no \`orrery\` on PATH). ${INSTALL_HINT}`,
  };
}
