// The recording of an `orrery` debug session as markdown: the timeline (`orrery/timeline`),
// a GenServer's state history (`orrery/stateHistory`) and a variable's value history
// (`orrery/valueHistory`). Pure, unit-tested; the commands are in historyDocs.ts.

export interface TimelineEvent {
  seq: number;
  timeUs: number;
  node?: string;
  pid?: string | null;
  module?: string;
  function?: string;
  line?: number;
  depth?: number;
  kind?: "line" | "return" | string;
  bindings?: Record<string, string>;
  result?: string;
  state?: string;
}

export interface TimelineResult {
  total: number;
  events: TimelineEvent[];
}

export interface ValueChange {
  seq: number;
  timeUs: number;
  pid?: string | null;
  node?: string;
  module?: string;
  function?: string;
  line?: number;
  value: string;
  with?: Record<string, string>;
}

export interface ValueHistoryResult {
  variable: string;
  changes: ValueChange[];
}

export interface StateEntry {
  seq: number;
  timeUs: number;
  pid?: string | null;
  node?: string;
  callback: string;
  message?: Record<string, string>;
  stateBefore?: string | null;
  stateAfter?: string | null;
  returned?: string | null;
  line?: number;
}

export interface StateHistoryResult {
  module: string;
  history: StateEntry[];
}

/** The custom DAP requests (see the server's dap/mod.rs and debug/history.rs). */
export const HistoryRequests = {
  timeline: "orrery/timeline",
  valueHistory: "orrery/valueHistory",
  stateHistory: "orrery/stateHistory",
} as const;

/** Longest text shown in one table cell before it is cut with `…`. */
export const CELL_MAX = 160;

/** Text fit for one markdown table cell: one line, `|` escaped, bounded, in backticks. */
export function mdCode(s: string | null | undefined, max = CELL_MAX): string {
  if (s === null || s === undefined || s === "") return "";
  let t = s.replace(/\s*\n\s*/g, " ");
  if (t.length > max) t = t.slice(0, max - 1) + "…";
  t = t.replace(/\|/g, "\\|");
  // A backtick inside (charlists in old syntax, quoted atoms) needs a longer fence.
  const fence = t.includes("`") ? "``" : "`";
  const pad = fence.length > 1 ? " " : "";
  return `${fence}${pad}${t}${pad}${fence}`;
}

/** Plain text for a table cell (pids, names): one line, `|` escaped. */
export function mdText(s: string | number | null | undefined): string {
  if (s === null || s === undefined) return "";
  return String(s).replace(/\s*\n\s*/g, " ").replace(/\|/g, "\\|");
}

/** Time since `t0` (µs) in milliseconds: `+0.000 ms`, `+12.345 ms`. */
export function relMs(timeUs: number, t0: number): string {
  if (!Number.isFinite(timeUs) || !Number.isFinite(t0)) return "?";
  return `+${((timeUs - t0) / 1000).toFixed(3)} ms`;
}

/** `run/1:12` (with the module when it differs from `module`). */
export function where(e: { module?: string; function?: string; line?: number }, module?: string): string {
  const f = e.function ?? "?";
  const m = e.module && e.module !== module ? `${e.module}.` : "";
  return `${m}${f}${e.line !== undefined && e.line !== null ? `:${e.line}` : ""}`;
}

/** `a = 1, b = [2]` from a bindings map, in its order. */
export function bindingsText(b: Record<string, string> | undefined, max = CELL_MAX): string {
  const entries = Object.entries(b ?? {});
  if (entries.length === 0) return "";
  return mdCode(entries.map(([k, v]) => `${k} = ${v}`).join(", "), max);
}

function earliest(xs: { timeUs: number }[]): number {
  let t0 = Number.POSITIVE_INFINITY;
  for (const x of xs) if (Number.isFinite(x.timeUs) && x.timeUs < t0) t0 = x.timeUs;
  return t0;
}

const NO_RECORDING =
  "_Nothing recorded. The timeline records only when the session was started with `\"record\": true`, and only in modules with a breakpoint (instrumented); run the code after setting one._";

/** The timeline document: one row per recorded line or return. */
export function timelineMarkdown(r: TimelineResult, opts: { module?: string; pid?: string; offset?: number } = {}): string {
  const out: string[] = [];
  const scope = [opts.module, opts.pid].filter((x) => x).join(" · ");
  out.push(`# Orrery timeline${scope ? ` — ${scope}` : ""}`);
  out.push("");
  const events = r.events ?? [];
  const offset = opts.offset ?? 0;
  if (events.length === 0) {
    out.push(NO_RECORDING);
    return out.join("\n") + "\n";
  }
  const shown = events.length < r.total ? `events ${offset + 1}–${offset + events.length} of ${r.total}` : `${r.total} events`;
  out.push(`${shown}; time relative to the first shown. \`→\` marks a return and its result.`);
  out.push("");
  out.push("| seq | time | pid | function:line | bindings / result |");
  out.push("|---:|---:|---|---|---|");
  const t0 = earliest(events);
  for (const e of events) {
    const indent = e.depth && e.depth > 0 ? "  ".repeat(Math.min(e.depth, 8)).replace(/ /g, "&nbsp;") : "";
    const what =
      e.kind === "return"
        ? `→ ${mdCode(e.result ?? "")}${e.state !== undefined ? ` (state ${mdCode(e.state)})` : ""}`
        : bindingsText(e.bindings);
    out.push(`| ${e.seq} | ${relMs(e.timeUs, t0)} | ${mdText(e.pid)} | ${indent}${mdText(where(e, opts.module))} | ${what} |`);
  }
  return out.join("\n") + "\n";
}

/** The value-history document: each distinct value a variable took, where and when. */
export function valueHistoryMarkdown(r: ValueHistoryResult, opts: { module?: string } = {}): string {
  const out: string[] = [];
  out.push(`# Orrery value history — \`${r.variable}\`${opts.module ? ` in ${opts.module}` : ""}`);
  out.push("");
  const changes = r.changes ?? [];
  if (changes.length === 0) {
    out.push(`_No recorded value of \`${r.variable}\`._ ${NO_RECORDING.replace(/^_Nothing recorded\. /, "_")}`);
    return out.join("\n") + "\n";
  }
  out.push(`${changes.length} change${changes.length === 1 ? "" : "s"}; time relative to the first.`);
  out.push("");
  out.push("| seq | time | pid | function:line | value | with |");
  out.push("|---:|---:|---|---|---|---|");
  const t0 = earliest(changes);
  for (const c of changes) {
    out.push(`| ${c.seq} | ${relMs(c.timeUs, t0)} | ${mdText(c.pid)} | ${mdText(where(c))} | ${mdCode(c.value)} | ${bindingsText(c.with, 100)} |`);
  }
  return out.join("\n") + "\n";
}

/** The message of a callback: `request = :get, from = …` without the state. */
export function messageText(m: Record<string, string> | undefined): string {
  const entries = Object.entries(m ?? {});
  if (entries.length === 0) return "";
  if (entries.length === 1) return mdCode(entries[0][1]);
  return bindingsText(m);
}

/** The state-history document: each callback, its message, state before → state after. */
export function stateHistoryMarkdown(r: StateHistoryResult): string {
  const out: string[] = [];
  out.push(`# Orrery state history — ${r.module}`);
  out.push("");
  const history = r.history ?? [];
  if (history.length === 0) {
    out.push(
      `_No recorded callback of ${r.module}._ The state history needs a recording session (\`"record": true\`) and a breakpoint in ${r.module}, then messages to the process.`,
    );
    return out.join("\n") + "\n";
  }
  out.push(`${history.length} callback${history.length === 1 ? "" : "s"}; time relative to the first.`);
  out.push("");
  out.push("| seq | time | pid | callback | message | state before → state after | returned |");
  out.push("|---:|---:|---|---|---|---|---|");
  const t0 = earliest(history);
  for (const h of history) {
    const before = h.stateBefore === null || h.stateBefore === undefined ? "?" : mdCode(h.stateBefore);
    const after = h.stateAfter === null || h.stateAfter === undefined ? "?" : mdCode(h.stateAfter);
    const change = h.stateBefore === h.stateAfter && h.stateBefore ? `${before} (unchanged)` : `${before} → ${after}`;
    out.push(
      `| ${h.seq} | ${relMs(h.timeUs, t0)} | ${mdText(h.pid)} | ${mdText(h.callback)}${h.line ? `:${h.line}` : ""} | ${messageText(h.message)} | ${change} | ${mdCode(h.returned ?? "")} |`,
    );
  }
  return out.join("\n") + "\n";
}

/** The document path for a view: `/timeline/KV.Steps.md`. */
export function historyPath(kind: "timeline" | "state" | "values", subject: string | undefined): string {
  const safe = (subject ?? "all").replace(/[^A-Za-z0-9_.@-]/g, "_") || "all";
  return `/${kind}/${safe}.md`;
}

/** The word at `character` of `line` (a variable name: `state`, `acc1`, `_x`), if any. */
export function wordAt(line: string, character: number): string | undefined {
  const re = /[a-z_][A-Za-z0-9_]*/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) {
    const start = m.index;
    const end = start + m[0].length;
    if (character >= start && character <= end) {
      const before = start > 0 ? line[start - 1] : "";
      // Part of an alias or an atom/module call (`:ok`, `Foo.bar`) is not a variable.
      if (/[A-Za-z0-9_:.@]/.test(before)) return undefined;
      return m[0];
    }
  }
  return undefined;
}

/** Why a debug session cannot answer the history requests (none, or not an Orrery one), else undefined. */
export function sessionProblem(session: { type: string; name: string } | undefined): string | undefined {
  if (!session) {
    return 'Orrery: no active debug session. Start an Orrery debug session (launch.json type "orrery", with "record": true) and set a breakpoint in the module first.';
  }
  if (session.type !== "orrery") {
    return `Orrery: the active debug session "${session.name}" is of type "${session.type}": the recording views need an Orrery session (type "orrery"). Select it in the Call Stack view.`;
  }
  return undefined;
}

/** How many timeline events a view asks for (the newest ones when there are more). */
export const TIMELINE_LIMIT = 1000;

/** The `orrery/timeline` arguments for what the user typed: a pid, a module or nothing (all). */
export function timelineArgs(input: string): { module?: string; pid?: string } {
  const t = input.trim();
  if (t === "") return {};
  if (/^(#PID)?<\d+\.\d+\.\d+>$/.test(t)) return { pid: t.startsWith("#PID") ? t : `#PID${t}` };
  return { module: t };
}
