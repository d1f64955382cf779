// Orrery for VS Code: live values from the running BEAM node in the editor, a side bar with
// the supervision tree, hot swap commands and the time-travel debugger.

import * as vscode from "vscode";
import { CHOICE_KEY, LIVE_HINTS_KEY, OrreryClient, cookieSecretKey } from "./client";
import { registerDebugger } from "./debug";
import { fullNodeName, localNodes } from "./epmd";
import { registerHistoryCommands } from "./historyDocs";
import { moduleAt, moduleAtLine, statusView, type LastSwap } from "./format";
import { errorText, parseSwapMessage, unsupportedCommandText, type Action } from "./messages";
import { ServerCommands, type StatusResult } from "./protocol";
import type { AttachChoice } from "./settings";
import { SCHEME, StateDocuments } from "./stateDocs";
import { DEBUG_TEST_COMMAND, checkTestConfig, folderIndexFor, nearestTestLens } from "./testLens";
import { ProcessesProvider, SupervisionTreeProvider, targetOfTreeItem } from "./views";

let orrery: Orrery | undefined;

export async function activate(ctx: vscode.ExtensionContext): Promise<Orrery> {
  orrery = new Orrery(ctx);
  await orrery.activate();
  return orrery;
}

export async function deactivate(): Promise<void> {
  await orrery?.client.stop();
  orrery = undefined;
}

type NodePick = vscode.QuickPickItem & { node?: string; action?: "manual" | "embedded" | "settings" };

export class Orrery {
  readonly client: OrreryClient;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly tree: SupervisionTreeProvider;
  private readonly processes: ProcessesProvider;
  private readonly states: StateDocuments;
  private lastStatus: StatusResult | undefined;
  private lastSwap: LastSwap | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private wasAttached = false;

  constructor(private readonly ctx: vscode.ExtensionContext) {
    this.client = new OrreryClient(ctx, {
      inspect: (t) => this.inspect(t),
      act: (a, m) => this.act(a, m),
      swapped: (sw) => {
        this.lastSwap = { module: sw.verb === "swapped" ? sw.modules : `${sw.modules} (rolled back)`, at: new Date(), ok: true };
        void this.updateStatus();
      },
    });
    this.statusItem = vscode.window.createStatusBarItem("orrery.status", vscode.StatusBarAlignment.Left, 50);
    this.statusItem.name = "Orrery";
    this.statusItem.command = "orrery.showStatus";
    this.tree = new SupervisionTreeProvider(this.client);
    this.processes = new ProcessesProvider(this.client);
    this.states = new StateDocuments(this.client);
  }

  async activate(): Promise<void> {
    const ctx = this.ctx;
    const cmd = (id: string, f: (...args: unknown[]) => unknown) => ctx.subscriptions.push(vscode.commands.registerCommand(id, f));
    ctx.subscriptions.push(
      this.statusItem,
      vscode.window.registerTreeDataProvider("orrery.supervisionTree", this.tree),
      vscode.window.registerTreeDataProvider("orrery.processes", this.processes),
      vscode.workspace.registerTextDocumentContentProvider(SCHEME, this.states),
      this.client.onDidChange(() => void this.updateStatus()),
      { dispose: () => this.stopPolling() },
    );
    cmd("orrery.attach", () => this.attach());
    cmd("orrery.detach", () => this.detach());
    cmd("orrery.hotSwapNow", () => this.hotSwap());
    cmd("orrery.rollbackModule", (m) => this.rollback(typeof m === "string" ? m : undefined));
    cmd("orrery.inspect", (t) => this.inspectCommand(typeof t === "string" ? t : undefined));
    cmd("orrery.inspectTreeItem", (item) => {
      const t = targetOfTreeItem(item);
      return t ? this.inspect(t) : undefined;
    });
    cmd("orrery.refreshStateDocument", () => {
      const uri = vscode.window.activeTextEditor?.document.uri;
      if (uri) this.states.refresh(uri);
    });
    cmd("orrery.toggleLiveHints", () => this.toggleLiveHints());
    cmd("orrery.showStatus", () => this.showStatus());
    cmd("orrery.showOutput", () => this.client.output.show(true));
    cmd("orrery.restartServer", () => this.client.restart());
    cmd("orrery.refreshViews", () => this.refreshViews());
    cmd("orrery.pickNode", () => this.pickNodeName());
    // Client-side (not in the server's executeCommandProvider): the "Debug test" lenses.
    cmd(DEBUG_TEST_COMMAND, (config) => this.debugTest(config));
    registerDebugger(ctx, this.client);
    // Timeline, state and value history of the active `orrery` debug session.
    registerHistoryCommands(ctx);
    this.statusItem.show();
    void this.updateStatus();
    this.startPolling();
    // Start now (activation means an Elixir file or a mix project is open).
    void this.client.start();
  }

  // ---------------------------------------------------------------- status

  private startPolling(): void {
    this.stopPolling();
    const ms = Math.max(500, vscode.workspace.getConfiguration("orrery").get<number>("statusPollMs") ?? 3000);
    this.pollTimer = setInterval(() => void this.updateStatus(), ms);
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private updating = false;

  async updateStatus(): Promise<StatusResult | undefined> {
    if (this.updating) return this.lastStatus;
    this.updating = true;
    try {
      let s: StatusResult | undefined;
      if (this.client.running) {
        try {
          s = await this.client.status();
        } catch {
          s = undefined;
        }
      }
      this.lastStatus = s;
      const stopped = this.client.stopped && !this.client.running;
      const view = s === undefined && !stopped
        ? { text: "$(sync~spin) Orrery: starting", tooltip: "Orrery is starting the language server", level: "idle" as const }
        : statusView(s, { stopped, lastSwap: this.lastSwap });
      this.statusItem.text = view.text;
      this.statusItem.tooltip = new vscode.MarkdownString(view.tooltip);
      this.statusItem.backgroundColor =
        view.level === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : view.level === "error"
            ? new vscode.ThemeColor("statusBarItem.errorBackground")
            : undefined;
      const attached = !!s?.attached;
      void vscode.commands.executeCommand("setContext", "orrery.attached", attached);
      if (attached !== this.wasAttached) {
        this.wasAttached = attached;
        this.refreshViews();
      }
      return s;
    } finally {
      this.updating = false;
    }
  }

  private refreshViews(): void {
    this.tree.refresh();
    this.processes.refresh();
  }

  private async showStatus(): Promise<void> {
    const s = await this.updateStatus();
    type Item = vscode.QuickPickItem & { run?: () => unknown };
    const items: Item[] = [];
    if (s?.attached) {
      for (const n of s.nodes ?? []) {
        items.push({ label: `$(pulse) ${n.name}`, description: `OTP ${n.otp ?? "?"} · Elixir ${n.elixir ?? "?"}`, detail: s.mode === "managed" ? "started by Orrery" : "attached" });
      }
    } else {
      items.push({
        label: "$(warning) Not attached",
        detail: s ? (s.reason ?? (typeof s.status === "object" ? s.status?.reason : undefined) ?? undefined) : "the language server is not running",
      });
    }
    if (this.lastSwap) items.push({ label: `$(zap) Last swap: ${this.lastSwap.module}`, description: this.lastSwap.at.toLocaleTimeString() });
    items.push(
      { label: "", kind: vscode.QuickPickItemKind.Separator },
      { label: "$(plug) Attach to Node…", run: () => this.attach() },
      { label: "$(debug-disconnect) Detach", run: () => this.detach() },
      { label: "$(zap) Hot Swap Now", run: () => this.hotSwap() },
      { label: `$(eye) ${this.client.liveHints ? "Hide" : "Show"} Live Hints`, run: () => this.toggleLiveHints() },
      { label: "$(output) Show Server Log", run: () => this.client.output.show(true) },
      { label: "$(debug-restart) Restart Server", run: () => this.client.restart() },
    );
    const pick = await vscode.window.showQuickPick(items, { title: "Orrery", placeHolder: s?.attached ? `attached (${s.mode})` : "not attached" });
    await pick?.run?.();
  }

  // ---------------------------------------------------------------- attach / detach

  private async nodeItems(): Promise<NodePick[]> {
    const items: NodePick[] = [];
    try {
      const names = await localNodes();
      for (const n of names) {
        const node = fullNodeName(n.name);
        items.push({
          label: `$(vm-running) ${node}`,
          description: n.name.includes("_orrery_") ? `port ${n.port} · started by Orrery` : `port ${n.port}`,
          node,
        });
      }
      if (names.length === 0) items.push({ label: "$(info) EPMD knows no nodes on this host", description: "start your app with --sname NAME" });
    } catch (e) {
      items.push({ label: "$(warning) No nodes found", detail: errorText(e) });
    }
    items.push({ label: "$(edit) Enter a node name…", description: "name@host, e.g. a remote node", action: "manual" });
    return items;
  }

  private async askNodeName(): Promise<string | undefined> {
    return vscode.window.showInputBox({
      title: "Orrery: node to attach to",
      prompt: "name@host of a running node",
      placeHolder: "kv@localhost",
      validateInput: (v) => (/^[^@\s]+@[^@\s]+$/.test(v.trim()) ? undefined : "expected name@host"),
    });
  }

  /** For `${command:orrery.pickNode}` in launch.json. */
  private async pickNodeName(): Promise<string | undefined> {
    const pick = await vscode.window.showQuickPick(this.nodeItems(), { title: "Orrery: node to debug", matchOnDescription: true });
    if (!pick) return undefined;
    if (pick.action === "manual") return this.askNodeName();
    return pick.node;
  }

  async attach(): Promise<void> {
    const current = this.client.choice;
    const configured = this.client.rawConfig().node?.trim();
    const itemsPromise = this.nodeItems().then((items) => {
      const extra: NodePick[] = [
        { label: "$(play) Start this workspace's app", description: "Orrery runs `mix run --no-halt` and attaches (embedded default)", action: "embedded" },
      ];
      if (current.node || current.embedded) {
        extra.push({ label: "$(settings) Use the settings", description: configured ? `orrery.node = ${configured}` : "orrery.node is empty: embedded default", action: "settings" });
      }
      return [...items, { label: "", kind: vscode.QuickPickItemKind.Separator }, ...extra];
    });
    const pick = await vscode.window.showQuickPick(itemsPromise, {
      title: "Orrery: Attach to Node",
      placeHolder: "Pick a node EPMD knows on this host",
      matchOnDescription: true,
    });
    if (!pick) return;
    let choice: AttachChoice;
    if (pick.action === "embedded") choice = { embedded: true };
    else if (pick.action === "settings") choice = {};
    else {
      const node = pick.action === "manual" ? (await this.askNodeName())?.trim() : pick.node;
      if (!node) return;
      const known = await this.client.cookieFor(node);
      const cookie = await vscode.window.showInputBox({
        title: `Orrery: cookie for ${node}`,
        prompt: "Leave empty to use orrery.cookie / orrery.cookieFile / ~/.erlang.cookie. Kept in VS Code's secret storage.",
        password: true,
        value: known ?? "",
      });
      if (cookie === undefined) return;
      if (cookie.trim() === "") await this.ctx.secrets.delete(cookieSecretKey(node));
      else await this.ctx.secrets.store(cookieSecretKey(node), cookie.trim());
      choice = { node };
    }
    await this.ctx.workspaceState.update(CHOICE_KEY, choice);
    await this.client.restart();
    await this.updateStatus();
  }

  async detach(): Promise<void> {
    await this.client.stop();
    await this.updateStatus();
    this.refreshViews();
    void vscode.window.showInformationMessage("Orrery detached: the node is left as it was found.", "Attach to Node…").then((p) => {
      if (p) void this.attach();
    });
  }

  private async act(action: Action, _message: string): Promise<void> {
    switch (action) {
      case "Attach to Node…":
        return this.attach();
      case "Set Cookie…": {
        const node = this.client.settings().node;
        if (!node) {
          void vscode.commands.executeCommand("workbench.action.openSettings", "orrery.cookie");
          return;
        }
        const cookie = await vscode.window.showInputBox({ title: `Orrery: cookie for ${node}`, password: true, prompt: "Kept in VS Code's secret storage" });
        if (cookie === undefined) return;
        await this.ctx.secrets.store(cookieSecretKey(node), cookie.trim());
        if (!this.client.choice.node) await this.ctx.workspaceState.update(CHOICE_KEY, { node });
        await this.client.restart();
        return;
      }
      case "Open Settings":
        void vscode.commands.executeCommand("workbench.action.openSettings", "orrery");
        return;
      case "Show Log":
        this.client.output.show(true);
        return;
      case "Retry":
        await this.client.restart();
        return;
    }
  }

  // ---------------------------------------------------------------- live values

  private async toggleLiveHints(): Promise<void> {
    const on = !this.client.liveHints;
    await this.ctx.workspaceState.update(LIVE_HINTS_KEY, on);
    this.client.refreshLiveHints();
    vscode.window.setStatusBarMessage(`Orrery live hints ${on ? "on" : "off"}`, 3000);
  }

  /** The module under the cursor, else the module around it. */
  private targetAtCursor(): string | undefined {
    const ed = vscode.window.activeTextEditor;
    if (!ed || ed.document.languageId !== "elixir") return undefined;
    const pos = ed.selection.active;
    return moduleAt(ed.document.lineAt(pos.line).text, pos.character) ?? moduleAtLine(ed.document.getText(), pos.line);
  }

  private async inspectCommand(target?: string): Promise<void> {
    const t =
      target ??
      (await vscode.window.showInputBox({
        title: "Orrery: Inspect Live State",
        prompt: "A module with a registered process, a registered name (:name) or a pid (#PID<0.1.0>)",
        value: this.targetAtCursor() ?? "",
      }));
    if (t && t.trim()) await this.inspect(t.trim());
  }

  async inspect(target: string): Promise<void> {
    await this.states.open(target);
  }

  // ---------------------------------------------------------------- hot swap

  private async hotSwap(): Promise<void> {
    const ed = vscode.window.activeTextEditor;
    if (!ed || ed.document.languageId !== "elixir" || ed.document.uri.scheme !== "file") {
      void vscode.window.showWarningMessage("Orrery: open the Elixir file to hot swap first.");
      return;
    }
    // Saving swaps by itself on servers with hot swap on save; the command swaps even when
    // nothing changed. The server reports the outcome (progress, message, diagnostics).
    if (ed.document.isDirty) await ed.document.save();
    const module = moduleAtLine(ed.document.getText(), ed.selection.active.line) ?? ed.document.fileName;
    try {
      const r = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `Orrery: hot swapping ${module}` },
        () => this.client.executeServerCommand<unknown>(ServerCommands.hotSwap, [ed.document.uri.toString()]),
      );
      const summary = summarize(r);
      if (summary) void vscode.window.showInformationMessage(`Orrery: ${summary}`);
    } catch (e) {
      this.lastSwap = { module, at: new Date(), ok: false, detail: errorText(e) };
      void vscode.window.showErrorMessage(unsupportedCommandText("hot swap", errorText(e)), "Show Log").then((p) => p && this.client.output.show(true));
    }
    void this.updateStatus();
  }

  // ---------------------------------------------------------------- debug test

  /**
   * `orrery.debugTest`: start the launch configuration a "Debug test" lens carries; without
   * one (command palette), the lens closest at or above the cursor.
   */
  private async debugTest(arg: unknown): Promise<boolean> {
    const raw = arg ?? (await this.testConfigAtCursor());
    if (raw === undefined) return false;
    const r = checkTestConfig(raw);
    if (!r.ok) {
      void vscode.window.showErrorMessage(r.message);
      return false;
    }
    const folders = vscode.workspace.workspaceFolders ?? [];
    const i = folderIndexFor(r.config.cwd, folders.map((f) => f.uri.fsPath));
    let failure: string | undefined;
    try {
      if (!(await vscode.debug.startDebugging(i === undefined ? undefined : folders[i], r.config as vscode.DebugConfiguration))) {
        failure = "the debug session did not start";
      }
    } catch (e) {
      failure = errorText(e);
    }
    if (failure === undefined) return true;
    const msg = `Orrery: ${r.config.name}: ${failure}. See the Orrery output.`;
    this.client.output.appendLine(msg);
    void vscode.window.showErrorMessage(msg, "Show Log").then((p) => p && this.client.output.show(true));
    return false;
  }

  /** The configuration of the "Debug test" lens for the cursor (after telling the user why not). */
  private async testConfigAtCursor(): Promise<unknown> {
    const ed = vscode.window.activeTextEditor;
    if (!ed || ed.document.languageId !== "elixir" || ed.document.uri.scheme !== "file") {
      void vscode.window.showWarningMessage("Orrery: open an ExUnit file (*_test.exs) and put the cursor in a test first.");
      return undefined;
    }
    let lenses: LspCodeLens[] | null;
    try {
      lenses = await this.client.request<LspCodeLens[] | null>("textDocument/codeLens", { textDocument: { uri: ed.document.uri.toString() } });
    } catch (e) {
      void vscode.window.showErrorMessage(`Orrery: could not ask for the test lenses: ${errorText(e)}`);
      return undefined;
    }
    const pick = nearestTestLens(
      (lenses ?? []).map((l) => ({ line: l.range.start.line, command: l.command?.command, arguments: l.command?.arguments })),
      ed.selection.active.line,
    );
    if (!pick) {
      void vscode.window.showWarningMessage(
        "Orrery: no test at or above the cursor. “Debug test” works in ExUnit files (*_test.exs) of the mix project.",
      );
      return undefined;
    }
    return pick.arguments?.[0];
  }

  private async rollback(module?: string): Promise<void> {
    const m = (
      module ??
      (await vscode.window.showInputBox({
        title: "Orrery: Roll Back Module",
        prompt: "Load the previous version of this module back on every attached node",
        value: this.targetAtCursor() ?? "",
      })) ??
      ""
    ).trim();
    if (!m) return;
    try {
      // The server reports the rollback itself (a message the status bar picks up).
      await this.client.executeServerCommand<unknown>(ServerCommands.rollback, [m]);
    } catch (e) {
      void vscode.window.showErrorMessage(unsupportedCommandText("rollback", errorText(e)), "Show Log").then((p) => p && this.client.output.show(true));
    }
    void this.updateStatus();
  }
}

/** A code lens as the server sends it (LSP shape). */
interface LspCodeLens {
  range: { start: { line: number } };
  command?: { command: string; arguments?: unknown[] };
}
/** A one-line summary of a command's result, when the server did not report it itself. */
function summarize(r: unknown): string | undefined {
  if (typeof r === "string") return parseSwapMessage(r) ? undefined : r;
  if (r && typeof r === "object") {
    const o = r as Record<string, unknown>;
    if (typeof o.message === "string") return o.message;
    if (Array.isArray(o.modules)) return `swapped ${o.modules.join(", ")}`;
  }
  return undefined;
}
