// Commands showing the recording of the active `orrery` debug session (orrery/timeline,
// orrery/stateHistory, orrery/valueHistory) in read-only markdown documents.

import * as vscode from "vscode";
import { firstModule, moduleAtLine } from "./format";
import {
  HistoryRequests,
  TIMELINE_LIMIT,
  historyPath,
  sessionProblem,
  stateHistoryMarkdown,
  timelineArgs,
  timelineMarkdown,
  valueHistoryMarkdown,
  wordAt,
  type StateHistoryResult,
  type TimelineResult,
  type ValueHistoryResult,
} from "./history";
import { errorText } from "./messages";

export const HISTORY_SCHEME = "orrery-history";

export const HistoryCommands = {
  timeline: "orrery.showTimeline",
  stateHistory: "orrery.showStateHistory",
  valueHistory: "orrery.showValueHistory",
} as const;

/** The rendered views, by URI; rendered again when their command runs again. */
export class HistoryDocuments implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly texts = new Map<string, string>();

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "# Orrery\n\nThis view is gone: run its command again.\n";
  }

  async show(path: string, text: string): Promise<vscode.TextEditor> {
    const uri = vscode.Uri.from({ scheme: HISTORY_SCHEME, path });
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
    let doc = await vscode.workspace.openTextDocument(uri);
    if (doc.languageId !== "markdown") doc = await vscode.languages.setTextDocumentLanguage(doc, "markdown");
    return vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
  }
}

/** The active debug session if it is an Orrery one, else undefined (after saying why). */
function orrerySession(): vscode.DebugSession | undefined {
  const s = vscode.debug.activeDebugSession;
  const problem = sessionProblem(s);
  if (problem) {
    void vscode.window.showWarningMessage(problem);
    return undefined;
  }
  return s;
}

/** The module of the active editor's .ex file (around the cursor, else its first defmodule). */
function editorModule(): string | undefined {
  const ed = vscode.window.activeTextEditor;
  if (!ed || !/\.exs?$/.test(ed.document.uri.path)) return undefined;
  const text = ed.document.getText();
  return moduleAtLine(text, ed.selection.active.line) ?? firstModule(text);
}

async function ask<T>(session: vscode.DebugSession, command: string, args: object): Promise<T | undefined> {
  try {
    return (await session.customRequest(command, args)) as T;
  } catch (e) {
    void vscode.window.showErrorMessage(`Orrery: ${command} failed: ${errorText(e)}`);
    return undefined;
  }
}

export function registerHistoryCommands(ctx: vscode.ExtensionContext): HistoryDocuments {
  const docs = new HistoryDocuments();
  const cmd = (id: string, f: (...args: unknown[]) => unknown) => ctx.subscriptions.push(vscode.commands.registerCommand(id, f));
  ctx.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(HISTORY_SCHEME, docs));

  // Each command takes its argument (module, variable) when called with one: no prompt.
  cmd(HistoryCommands.timeline, async (arg) => {
    const session = orrerySession();
    if (!session) return undefined;
    const input =
      typeof arg === "string"
        ? arg
        : await vscode.window.showInputBox({
            title: "Orrery: Show Timeline",
            prompt: "A module (KV.Bucket), a pid (#PID<0.123.0>), or empty for everything recorded",
            value: editorModule() ?? "",
          });
    if (input === undefined) return undefined;
    const filter = timelineArgs(input);
    let offset = 0;
    let r = await ask<TimelineResult>(session, HistoryRequests.timeline, { ...filter, offset, limit: TIMELINE_LIMIT });
    if (r && r.total > TIMELINE_LIMIT && r.events.length < r.total) {
      // More than one page: show the newest events.
      offset = r.total - TIMELINE_LIMIT;
      r = await ask<TimelineResult>(session, HistoryRequests.timeline, { ...filter, offset, limit: TIMELINE_LIMIT });
    }
    if (!r) return undefined;
    await docs.show(historyPath("timeline", filter.module ?? filter.pid), timelineMarkdown(r, { ...filter, offset }));
    return r;
  });

  cmd(HistoryCommands.stateHistory, async (arg) => {
    const session = orrerySession();
    if (!session) return undefined;
    const module = (
      typeof arg === "string"
        ? arg
        : await vscode.window.showInputBox({
            title: "Orrery: Show State History",
            prompt: "A GenServer module (with a breakpoint, in a recording session)",
            value: editorModule() ?? "",
            validateInput: (v) => (v.trim() ? undefined : "a module, e.g. KV.Bucket"),
          })
    )?.trim();
    if (!module) return undefined;
    const r = await ask<StateHistoryResult>(session, HistoryRequests.stateHistory, { module });
    if (!r) return undefined;
    await docs.show(historyPath("state", module), stateHistoryMarkdown(r));
    return r;
  });

  cmd(HistoryCommands.valueHistory, async (arg) => {
    const session = orrerySession();
    if (!session) return undefined;
    let variable = typeof arg === "string" ? arg : undefined;
    if (variable === undefined) {
      const ed = vscode.window.activeTextEditor;
      const word = ed ? wordAt(ed.document.lineAt(ed.selection.active.line).text, ed.selection.active.character) : undefined;
      variable = await vscode.window.showInputBox({
        title: "Orrery: Show Value History",
        prompt: "A variable (every value it took in the recording; `state` for a GenServer's state)",
        value: word ?? "",
        validateInput: (v) => (/^[a-z_][A-Za-z0-9_]*$/.test(v.trim()) ? undefined : "a variable name, e.g. state"),
      });
    }
    variable = variable?.trim();
    if (!variable) return undefined;
    const r = await ask<ValueHistoryResult>(session, HistoryRequests.valueHistory, { variable });
    if (!r) return undefined;
    await docs.show(historyPath("values", variable), valueHistoryMarkdown(r));
    return r;
  });
  return docs;
}
