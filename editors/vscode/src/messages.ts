// What to offer when the server reports a problem (window/showMessage). The server's
// messages already say what went wrong; we add the buttons that fix it. Pure, unit-tested.

export type MessageKind = "cookie" | "noNode" | "noEpmd" | "nodeDown" | "detached" | "compile" | "notAttached" | "other";

export type Action = "Attach to Node…" | "Set Cookie…" | "Open Settings" | "Show Log" | "Retry";

export interface Classified {
  kind: MessageKind;
  /** The message as shown (a leading "Orrery: " is kept, added if missing). */
  text: string;
  actions: Action[];
}

export function classifyServerMessage(message: string): Classified {
  const text = /^orrery\b/i.test(message.trim()) ? message.trim() : `Orrery: ${message.trim()}`;
  const m = message.toLowerCase();
  if (m.includes("cookie rejected") || m.includes("cannot read the cookie file") || m.includes("no cookie configured")) {
    return { kind: "cookie", text, actions: ["Set Cookie…", "Attach to Node…", "Show Log"] };
  }
  if (m.includes("no node named")) {
    return { kind: "noNode", text, actions: ["Attach to Node…", "Retry", "Show Log"] };
  }
  if (m.includes("no epmd on")) {
    return { kind: "noEpmd", text, actions: ["Attach to Node…", "Retry", "Show Log"] };
  }
  if (m.includes("bad node name")) {
    return { kind: "noNode", text, actions: ["Attach to Node…", "Open Settings"] };
  }
  if (m.includes("detached")) {
    return { kind: "detached", text, actions: ["Show Log"] };
  }
  if (m.includes("went down")) {
    return { kind: "nodeDown", text, actions: ["Retry", "Show Log"] };
  }
  if (m.includes("not attached")) {
    return { kind: "notAttached", text, actions: ["Attach to Node…", "Show Log"] };
  }
  if (m.includes("mix compile") || m.includes("compil") || m.includes("did not start")) {
    return { kind: "compile", text, actions: ["Show Log", "Retry"] };
  }
  return { kind: "other", text, actions: ["Show Log"] };
}

/** The error text of a failed request (a JSON-RPC ResponseError or anything thrown). */
export function errorText(e: unknown): string {
  if (e && typeof e === "object" && "message" in e && typeof (e as { message: unknown }).message === "string") {
    return (e as { message: string }).message;
  }
  return String(e);
}

/** A clear message for a command the server does not implement yet. */
export function unsupportedCommandText(what: string, serverError: string): string {
  if (/unknown command|method not found|unhandled method/i.test(serverError)) {
    return `Orrery: this server does not support ${what} yet (${serverError}). Update orrery to a version with hot swap.`;
  }
  return `Orrery: ${what} failed: ${serverError}`;
}

/** A hot swap / rollback summary from the server ("KV.Bucket swapped on 1 node in 2 ms, …"). */
export interface SwapSummary {
  modules: string;
  verb: "swapped" | "rolled back";
  nodes: number;
  text: string;
}

export function parseSwapMessage(message: string): SwapSummary | undefined {
  const m = /^(?:Orrery: )?(.+?) (swapped|rolled back) on (\d+) nodes? in \d+ ms/.exec(message.trim());
  if (!m) return undefined;
  return { modules: m[1], verb: m[2] as SwapSummary["verb"], nodes: Number(m[3]), text: message.trim() };
}
