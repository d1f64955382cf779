// Turning VS Code's `orrery.*` settings (plus what the user picked with "Attach to Node…")
// into the settings object the server reads from initializationOptions and
// workspace/configuration. Pure: no `vscode` import, unit-tested.

import * as os from "node:os";
import * as path from "node:path";

/** The `orrery.*` settings as VS Code returns them (empty strings mean "unset"). */
export interface RawConfig {
  serverPath?: string;
  node?: string;
  cookie?: string;
  cookieFile?: string;
  allowWrites?: boolean | null;
  refreshMs?: number;
  attachPeers?: boolean;
  inlayHints?: { calls?: boolean; processes?: boolean; ets?: boolean };
  liveCallTime?: boolean | null;
  staticFeatures?: "auto" | "on" | "off";
  command?: string;
  attachRunning?: "ask" | "always" | "never";
}

/** What the user chose for this workspace with "Attach to Node…" (kept in workspace state). */
export interface AttachChoice {
  /** `name@host`; undefined: use the settings (or the embedded default). */
  node?: string;
  /** Start the workspace's own app even when `orrery.node` is set. */
  embedded?: boolean;
}

/** The settings object sent to `orrery lsp` (see the server's `config.rs`). */
export interface ServerSettings {
  node?: string;
  cookie?: string;
  cookieFile?: string;
  allowWrites?: boolean;
  refreshMs?: number;
  attachPeers?: boolean;
  inlayHints?: { calls: boolean; processes: boolean; ets: boolean };
  liveCallTime?: boolean;
  staticFeatures?: "on" | "off";
  command?: string;
  attachRunning?: "ask" | "always" | "never";
}

/**
 * Extensions that run a static Elixir language server (ElixirLS, Lexical, Next LS via
 * elixir-tools, Expert). Orrery runs beside them: with `orrery.staticFeatures` "auto" it
 * then leaves symbols, definition, completion and docs in hovers to them.
 */
export const KNOWN_ELIXIR_SERVERS = [
  "jakebecker.elixir-ls",
  "lexical-lsp.lexical",
  "elixir-tools.elixir-tools",
  "expert-lsp.expert",
  "elixir-lang.expert",
];

/** The fields of an installed extension that `otherElixirServers` reads. */
export interface ExtensionInfo {
  id: string;
  packageJSON?: { activationEvents?: string[]; dependencies?: Record<string, string> };
}

/**
 * The other extensions that serve Elixir with a language server: the known ones, and any
 * that activates on Elixir files and depends on `vscode-languageclient`.
 */
export function otherElixirServers(extensions: readonly ExtensionInfo[], self = "orrery.orrery"): string[] {
  return extensions
    .filter((e) => e.id.toLowerCase() !== self.toLowerCase())
    .filter((e) => {
      if (KNOWN_ELIXIR_SERVERS.includes(e.id.toLowerCase())) return true;
      const p = e.packageJSON ?? {};
      return (p.activationEvents ?? []).includes("onLanguage:elixir") && p.dependencies?.["vscode-languageclient"] !== undefined;
    })
    .map((e) => e.id);
}

/**
 * `staticFeatures` for the server: "on"/"off" as set; "auto" (the default) is "off" when
 * another Elixir language server is installed (it answers those), else left to the server (on).
 */
export function resolveStaticFeatures(setting: RawConfig["staticFeatures"], others: readonly string[]): "on" | "off" | undefined {
  if (setting === "on" || setting === "off") return setting;
  return others.length > 0 ? "off" : undefined;
}

const nonEmpty = (s: string | undefined | null): string | undefined => {
  const t = (s ?? "").trim();
  return t === "" ? undefined : t;
};

/** Expand a leading `~` and `${workspaceFolder}`, `${userHome}`. */
export function expandPath(p: string, workspaceFolder?: string, home: string = os.homedir()): string {
  let out = p.trim();
  if (out === "~") out = home;
  else if (out.startsWith("~/")) out = path.join(home, out.slice(2));
  out = out.replace(/\$\{userHome\}/g, home);
  if (workspaceFolder !== undefined) out = out.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  return out;
}

/**
 * The server settings: VS Code settings, overridden by the attach choice. `secretCookie` is
 * the cookie the user typed for the chosen node (from secret storage), if any.
 */
export function serverSettings(
  raw: RawConfig,
  choice: AttachChoice = {},
  secretCookie?: string,
  workspaceFolder?: string,
  otherServers: readonly string[] = [],
): ServerSettings {
  const out: ServerSettings = {};
  const configuredNode = nonEmpty(raw.node);
  const node = choice.embedded ? undefined : (nonEmpty(choice.node) ?? configuredNode);
  if (node !== undefined) out.node = node;
  // A cookie typed for the picked node wins; the configured cookie belongs to the configured node
  // (or to any node when the pick did not come with one).
  const cookie = nonEmpty(secretCookie) ?? nonEmpty(raw.cookie);
  if (cookie !== undefined && node !== undefined) out.cookie = cookie;
  const cookieFile = nonEmpty(raw.cookieFile);
  if (cookieFile !== undefined) out.cookieFile = expandPath(cookieFile, workspaceFolder);
  if (typeof raw.allowWrites === "boolean") out.allowWrites = raw.allowWrites;
  if (typeof raw.refreshMs === "number" && Number.isFinite(raw.refreshMs)) {
    out.refreshMs = Math.max(100, Math.round(raw.refreshMs));
  }
  if (typeof raw.attachPeers === "boolean") out.attachPeers = raw.attachPeers;
  if (typeof raw.liveCallTime === "boolean") out.liveCallTime = raw.liveCallTime;
  const statics = resolveStaticFeatures(raw.staticFeatures, otherServers);
  if (statics !== undefined) out.staticFeatures = statics;
  const command = nonEmpty(raw.command);
  if (command !== undefined) out.command = command;
  if (raw.attachRunning === "ask" || raw.attachRunning === "always" || raw.attachRunning === "never") {
    out.attachRunning = raw.attachRunning;
  }
  const h = raw.inlayHints ?? {};
  out.inlayHints = {
    calls: h.calls !== false,
    processes: h.processes !== false,
    ets: h.ets !== false,
  };
  return out;
}

/** Settings whose change needs a new server (it attaches once, at start). */
export const RESTART_KEYS = ["serverPath", "node", "cookie", "cookieFile", "attachPeers", "command", "attachRunning"] as const;

/** A short description of where Orrery attaches, for messages and the status bar tooltip. */
export function describeTarget(s: ServerSettings): string {
  return s.node !== undefined ? s.node : "the workspace's mix app (started by Orrery)";
}
