// The language client: starts `orrery lsp`, feeds it settings, and routes what it says
// (log, notifications) to the right place.

import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  MessageType,
  RevealOutputChannelOn,
  ServerOptions,
  ShowMessageNotification,
  State,
} from "vscode-languageclient/node";
import { classifyServerMessage, parseSwapMessage, type Action, type SwapSummary } from "./messages";
import { Methods, ServerCommands, type StatusResult } from "./protocol";
import { resolveServerPath } from "./serverPath";
import { keepLens } from "./testLens";
import { RESTART_KEYS, describeTarget, otherElixirServers, serverSettings, type AttachChoice, type RawConfig, type ServerSettings } from "./settings";

export const CHOICE_KEY = "orrery.attachChoice";
export const LIVE_HINTS_KEY = "orrery.liveHints";
export const cookieSecretKey = (node: string) => `orrery.cookie:${node}`;

export interface ClientHooks {
  /** Open the state document for a target (the code lens "Inspect state" lands here). */
  inspect(target: string): Promise<void>;
  /** A user action offered on a server message. */
  act(action: Action, message: string): Promise<void>;
  /** The server reported a hot swap or rollback (on save or by command). */
  swapped(s: SwapSummary): void;
}

export class OrreryClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<boolean> | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when the client starts, stops or the server reports a change worth a new status. */
  readonly onDidChange = this.changed.event;
  readonly output: vscode.OutputChannel;
  private readonly trace: vscode.OutputChannel;
  private secretCookie: string | undefined;
  private stoppedByUser = false;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly hooks: ClientHooks,
  ) {
    this.output = vscode.window.createOutputChannel("Orrery");
    this.trace = vscode.window.createOutputChannel("Orrery Trace");
    ctx.subscriptions.push(
      this.output,
      this.trace,
      this.changed,
      vscode.workspace.onDidChangeConfiguration((e) => void this.configurationChanged(e)),
      // An Elixir language server installed or removed: `staticFeatures` "auto" follows it.
      vscode.extensions.onDidChange(() => void this.sendSettings()),
    );
  }

  get folder(): vscode.WorkspaceFolder | undefined {
    return vscode.workspace.workspaceFolders?.[0];
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  get stopped(): boolean {
    return this.stoppedByUser || this.client === undefined;
  }

  get choice(): AttachChoice {
    return this.ctx.workspaceState.get<AttachChoice>(CHOICE_KEY) ?? {};
  }

  get liveHints(): boolean {
    return this.ctx.workspaceState.get<boolean>(LIVE_HINTS_KEY) ?? true;
  }

  rawConfig(): RawConfig {
    const c = vscode.workspace.getConfiguration("orrery", this.folder?.uri);
    return {
      serverPath: c.get<string>("serverPath"),
      node: c.get<string>("node"),
      cookie: c.get<string>("cookie"),
      cookieFile: c.get<string>("cookieFile"),
      allowWrites: c.get<boolean | null>("allowWrites"),
      refreshMs: c.get<number>("refreshMs"),
      attachPeers: c.get<boolean>("attachPeers"),
      inlayHints: c.get<RawConfig["inlayHints"]>("inlayHints"),
      liveCallTime: c.get<boolean | null>("liveCallTime"),
      staticFeatures: c.get<RawConfig["staticFeatures"]>("staticFeatures"),
      command: c.get<string>("command"),
      attachRunning: c.get<RawConfig["attachRunning"]>("attachRunning"),
    };
  }

  /** The settings the server gets (the cookie included, so never log this). */
  settings(): ServerSettings {
    return serverSettings(this.rawConfig(), this.choice, this.secretCookie, this.folder?.uri.fsPath, this.otherServers());
  }

  /** The other Elixir language servers installed (Orrery runs beside them). */
  otherServers(): string[] {
    return otherElixirServers(vscode.extensions.all, this.ctx.extension.id);
  }

  async cookieFor(node: string): Promise<string | undefined> {
    return this.ctx.secrets.get(cookieSecretKey(node));
  }

  /** Start the server; false (after telling the user why) when it cannot. */
  start(): Promise<boolean> {
    this.stoppedByUser = false;
    if (this.client && this.client.state !== State.Stopped) return Promise.resolve(true);
    if (this.starting) return this.starting;
    this.starting = this.doStart().finally(() => {
      this.starting = undefined;
      this.changed.fire();
    });
    return this.starting;
  }

  private async doStart(): Promise<boolean> {
    const raw = this.rawConfig();
    const found = resolveServerPath({
      setting: raw.serverPath,
      workspaceFolder: this.folder?.uri.fsPath,
      envPath: process.env.PATH,
    });
    if (!found.ok) {
      this.output.appendLine(found.message);
      if (found.tried.length > 0) this.output.appendLine(`looked for: ${found.tried.join(", ")}`);
      // Not awaited: start() must not hang until the user dismisses the message.
      void vscode.window.showErrorMessage(found.message, "Open Settings", "Show Log").then((pick) => {
        if (pick === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "orrery.serverPath");
        if (pick === "Show Log") this.output.show(true);
      });
      return false;
    }
    const choice = this.choice;
    const node = choice.embedded ? undefined : choice.node;
    this.secretCookie = node ? await this.cookieFor(node) : undefined;
    const settings = this.settings();
    this.output.appendLine(
      `Starting ${found.path} lsp (from ${found.source}); target: ${describeTarget(settings)}`,
    );

    const serverOptions: ServerOptions = {
      command: found.path,
      args: ["lsp"],
      options: { cwd: this.folder?.uri.fsPath, env: { ...process.env } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file", language: "elixir" }],
      outputChannel: this.output,
      traceOutputChannel: this.trace,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      workspaceFolder: this.folder,
      initializationOptions: () => this.settings(),
      markdown: { isTrusted: false, supportHtml: false },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          if (this.stoppedByUser) return { action: CloseAction.DoNotRestart, handled: true };
          this.restarts = this.restarts.filter((t) => Date.now() - t < 180_000);
          this.restarts.push(Date.now());
          if (this.restarts.length > 4) {
            return {
              action: CloseAction.DoNotRestart,
              message: "Orrery: the language server stopped 5 times in 3 minutes and will not be restarted. See the Orrery output.",
            };
          }
          this.changed.fire();
          return { action: CloseAction.Restart, handled: true };
        },
      },
      middleware: {
        workspace: {
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) return answers;
            return params.items.map((item, i) => (item.section === "orrery" ? this.settings() : answers[i]));
          },
        },
        executeCommand: async (command, args, next) => {
          if (command === ServerCommands.inspectState && typeof args[0] === "string") {
            await this.hooks.inspect(args[0]);
            return undefined;
          }
          return next(command, args);
        },
        provideInlayHints: (doc, range, token, next) => (this.liveHints ? next(doc, range, token) : []),
        // Live hints off hides the live lenses; the "Debug test" lenses stay.
        provideCodeLenses: async (doc, token, next) => {
          const lenses = await next(doc, token);
          return this.liveHints ? lenses : lenses?.filter((l) => keepLens(l.command?.command, false));
        },
      },
    };

    const client = new LanguageClient("orrery", "Orrery", serverOptions, clientOptions);
    // Replaces the client's default window/showMessage handler (ours is registered after it):
    // the server's errors get buttons that fix them.
    client.onNotification(ShowMessageNotification.type, (m) => void this.showServerMessage(m.type, m.message));
    client.onDidChangeState(() => this.changed.fire());
    this.client = client;
    try {
      await client.start();
      return true;
    } catch (e) {
      const msg = `Orrery: the language server did not start: ${e instanceof Error ? e.message : String(e)}`;
      this.output.appendLine(msg);
      void vscode.window.showErrorMessage(msg, "Show Log").then((p) => p && this.output.show(true));
      return false;
    }
  }

  private restarts: number[] = [];

  private async showServerMessage(type: MessageType, message: string): Promise<void> {
    this.changed.fire();
    const show =
      type === MessageType.Error
        ? vscode.window.showErrorMessage
        : type === MessageType.Warning
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    if (type !== MessageType.Error && type !== MessageType.Warning) {
      const swap = parseSwapMessage(message);
      if (swap) this.hooks.swapped(swap);
      void show(message);
      return;
    }
    const c = classifyServerMessage(message);
    this.output.appendLine(`[${type === MessageType.Error ? "error" : "warning"}] ${c.text}`);
    const pick = await show(c.text, ...c.actions);
    if (pick) await this.hooks.act(pick as Action, message);
  }

  async stop(): Promise<void> {
    this.stoppedByUser = true;
    const c = this.client;
    this.client = undefined;
    if (c) {
      try {
        if (c.state !== State.Stopped) await c.stop(15_000);
      } catch (e) {
        this.output.appendLine(`stopping the server: ${e instanceof Error ? e.message : String(e)}`);
      }
      await c.dispose().catch(() => undefined);
    }
    this.changed.fire();
  }

  async restart(): Promise<boolean> {
    await this.stop();
    this.restarts = [];
    return this.start();
  }

  async request<R>(method: string, params?: unknown): Promise<R> {
    const c = this.client;
    if (!c || c.state !== State.Running) throw new Error("Orrery is not running: run “Orrery: Attach to Node…”");
    return params === undefined ? c.sendRequest<R>(method) : c.sendRequest<R>(method, params);
  }

  status(): Promise<StatusResult> {
    return this.request<StatusResult>(Methods.status);
  }

  /** workspace/executeCommand, also for commands the server does not advertise (yet). */
  executeServerCommand<R>(command: string, args: unknown[]): Promise<R> {
    return this.request<R>(ExecuteCommandRequest.method, { command, arguments: args });
  }

  /** Ask the editor for fresh inlay hints and code lenses (after a toggle or a settings change). */
  refreshLiveHints(): void {
    const c = this.client;
    if (!c || c.state !== State.Running) return;
    for (const doc of vscode.workspace.textDocuments) {
      if (doc.languageId !== "elixir" || doc.uri.scheme !== "file") continue;
      c.getFeature("textDocument/inlayHint")?.getProvider(doc)?.onDidChangeInlayHints.fire();
      c.getFeature("textDocument/codeLens")?.getProvider(doc)?.onDidChangeCodeLensEmitter.fire();
    }
  }

  private async configurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration("orrery")) return;
    if (RESTART_KEYS.some((k) => e.affectsConfiguration(`orrery.${k}`))) {
      // Also when the server never started (e.g. orrery.serverPath was just fixed), but
      // not after the user detached.
      if (!this.stoppedByUser) {
        this.output.appendLine("Orrery settings for the node changed: restarting the server");
        await this.restart();
      }
      return;
    }
    await this.sendSettings();
    this.changed.fire();
  }

  /** Send the current settings to a running server. */
  private async sendSettings(): Promise<void> {
    const c = this.client;
    if (c && c.state === State.Running) {
      // The node and cookie do not change here (that restarts): leave the cookie out.
      const { cookie: _omit, ...rest } = this.settings();
      void _omit;
      await c.sendNotification("workspace/didChangeConfiguration", { settings: { orrery: rest } });
      this.refreshLiveHints();
    }
  }

  dispose(): void {
    void this.stop();
  }
}
