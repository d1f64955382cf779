// Text for the status bar, the state document and the tree views. Pure, unit-tested.

import type { ProcessItem, StateResult, StatusResult, SupTree } from "./protocol";

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "?";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export function statusState(s: StatusResult): string {
  if (typeof s.status === "string") return s.status;
  return s.status?.state ?? (s.attached ? "attached" : "detached");
}

export function statusReason(s: StatusResult): string | undefined {
  if (s.reason) return s.reason;
  if (s.status && typeof s.status === "object" && s.status.reason) return s.status.reason;
  return undefined;
}

export interface LastSwap {
  module: string;
  at: Date;
  ok: boolean;
  detail?: string;
}

export interface StatusView {
  text: string;
  tooltip: string;
  level: "ok" | "warning" | "error" | "idle";
}

const hhmm = (d: Date) => d.toTimeString().slice(0, 8);

/** The status bar item for a status answer (`undefined`: the server is not running). */
export function statusView(s: StatusResult | undefined, opts: { stopped?: boolean; lastSwap?: LastSwap } = {}): StatusView {
  const swapLine = opts.lastSwap
    ? `\n\nLast swap: ${opts.lastSwap.module} at ${hhmm(opts.lastSwap.at)}${opts.lastSwap.ok ? "" : ` (failed${opts.lastSwap.detail ? `: ${opts.lastSwap.detail}` : ""})`}`
    : "";
  if (opts.stopped || s === undefined) {
    return {
      text: "$(debug-disconnect) Orrery: detached",
      tooltip: `Orrery is not running. Click to attach.${swapLine}`,
      level: "idle",
    };
  }
  const nodes = s.nodes ?? [];
  const state = statusState(s);
  if (s.attached && nodes.length > 0) {
    const first = nodes[0].name;
    const more = nodes.length > 1 ? ` +${nodes.length - 1}` : "";
    const swap = opts.lastSwap ? ` · swap ${hhmm(opts.lastSwap.at)}` : "";
    const lines = nodes.map((n) => `- \`${n.name}\` — OTP ${n.otp ?? "?"}, Elixir ${n.elixir ?? "?"}${n.agent === false ? " (no agent)" : ""}`);
    const mode = s.mode === "managed" ? "Orrery started this app" + (s.managedPid ? ` (OS pid ${s.managedPid})` : "") : "attached to a running node";
    return {
      text: `$(pulse) ${first}${more}${swap}`,
      tooltip: `**Orrery** — ${mode}\n\n${lines.join("\n")}\n\nWrites (hot swap): ${s.allowWrites ? "allowed" : "not allowed"}${swapLine}`,
      level: "ok",
    };
  }
  const reason = statusReason(s);
  const connecting = /attaching|connecting|starting|reattaching|re-attaching/i.test(state);
  return {
    text: connecting ? `$(sync~spin) Orrery: ${state}` : `$(warning) Orrery: ${state}`,
    tooltip: `**Orrery** — not attached${s.node ? ` to \`${s.node}\`` : ""}${reason ? `\n\n${reason}` : ""}\n\nClick for actions.${swapLine}`,
    level: connecting ? "idle" : "warning",
  };
}

/** The text of the `orrery:` state document. */
export function stateDocument(r: StateResult): string {
  const out: string[] = [];
  out.push(`# Live state of ${r.target} — ${new Date().toISOString()}`);
  out.push(`# (Orrery: run "Orrery: Refresh Live State" to read it again)`);
  for (const p of r.processes) {
    out.push("");
    out.push(
      `# ${p.pid ?? "?"} on ${p.node} · queue ${p.messageQueueLen ?? "?"} · memory ${formatBytes(p.memory)} · reductions ${p.reductions ?? "?"}`,
    );
    if (p.stateAvailable === false || p.state === null || p.state === undefined) {
      out.push("# (state not available: the process is not a gen_server/gen_statem or did not answer sys:get_state)");
    } else {
      out.push(p.state);
    }
  }
  return out.join("\n") + "\n";
}

/** A tree item's label and description for a supervision tree node. */
export function supLabel(t: SupTree): { label: string; description: string; kind: "supervisor" | "worker" | "unknown" } {
  const kind = t.type === "supervisor" ? "supervisor" : t.type === "worker" ? "worker" : "unknown";
  const label = t.name ?? t.pid ?? "?";
  const parts: string[] = [];
  if (t.pid && t.pid !== label) parts.push(t.pid);
  if (t.module && t.module !== label && t.module !== "Supervisor.Default") parts.push(t.module);
  if (kind === "supervisor" && typeof t.childCount === "number") parts.push(`${t.childCount} children`);
  return { label, description: parts.join(" · "), kind };
}

export function processLabel(p: ProcessItem): { label: string; description: string } {
  const label = p.name ?? p.pid ?? "?";
  const parts: string[] = [];
  if (p.name && p.pid) parts.push(p.pid);
  parts.push(formatBytes(p.memory));
  if (p.messageQueueLen) parts.push(`queue ${p.messageQueueLen}`);
  if (p.currentFunction) parts.push(p.currentFunction);
  return { label, description: parts.join(" · ") };
}

/** Which process a `orrery:` URI shows: `orrery:/state/KV.Bucket.exs` → `KV.Bucket`. */
export function stateUri(target: string): { path: string; query: string } {
  const safe = target.replace(/[^A-Za-z0-9_.:@<>#-]/g, "_").replace(/[#<>]/g, "");
  return { path: `/state/${safe}.exs`, query: `target=${encodeURIComponent(target)}` };
}

export function targetFromQuery(query: string): string | undefined {
  for (const part of query.split("&")) {
    const [k, v] = part.split("=");
    if (k === "target" && v !== undefined) return decodeURIComponent(v);
  }
  return undefined;
}

/** The Elixir module name at `offset` in `line` (e.g. the cursor on `KV.Bucket`), if any. */
export function moduleAt(line: string, character: number): string | undefined {
  const re = /(?:[A-Z][A-Za-z0-9_]*)(?:\.[A-Z][A-Za-z0-9_]*)*/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) {
    const start = m.index;
    const end = start + m[0].length;
    if (character >= start && character <= end) {
      const before = start > 0 ? line[start - 1] : "";
      if (/[a-z0-9_]/.test(before)) continue;
      return m[0];
    }
  }
  return undefined;
}

/** The first `defmodule` name in a document's text, for commands run without a cursor on a module. */
export function firstModule(text: string): string | undefined {
  const m = /^\s*defmodule\s+([A-Z][A-Za-z0-9_.]*)/m.exec(text);
  return m ? m[1] : undefined;
}

/** The module enclosing `line` (0-based): the last `defmodule` opened at or above it. */
export function moduleAtLine(text: string, line: number): string | undefined {
  const lines = text.split(/\r?\n/);
  const stack: { name: string; indent: number }[] = [];
  for (let i = 0; i <= Math.min(line, lines.length - 1); i++) {
    const l = lines[i];
    const m = /^(\s*)defmodule\s+([A-Z][A-Za-z0-9_.]*)/.exec(l);
    const indent = l.length - l.trimStart().length;
    while (stack.length > 0 && /^\s*end\b/.test(l) && indent <= stack[stack.length - 1].indent) {
      stack.pop();
      break;
    }
    if (m) {
      const parent = stack.length > 0 ? stack[stack.length - 1].name : undefined;
      const name = parent ? `${parent}.${m[2]}` : m[2];
      stack.push({ name, indent: m[1].length });
    }
  }
  return stack.length > 0 ? stack[stack.length - 1].name : undefined;
}
