// The `orrery` debugger: launch/attach configurations resolved here, the adapter is
// `orrery dap` over stdio. Step Back / Reverse Continue appear when the adapter advertises
// `supportsStepBack`, which it does only when its timeline works.

import * as vscode from "vscode";
import type { OrreryClient } from "./client";
import { initialLaunchConfig, resolveDebugConfig, type OrreryDebugConfig } from "./debugConfig";
import { resolveServerPath } from "./serverPath";

export function registerDebugger(ctx: vscode.ExtensionContext, client: OrreryClient): void {
  const provider: vscode.DebugConfigurationProvider = {
    provideDebugConfigurations: () => [initialLaunchConfig()],
    // F5 without launch.json: launch the workspace app, or attach to the configured node.
    resolveDebugConfiguration(folder, config) {
      if (config.type || config.request || config.name) return config;
      const r = resolveDebugConfig({}, { folder: folder?.uri.fsPath ?? client.folder?.uri.fsPath, settings: client.settings() });
      return r.ok ? (r.config as vscode.DebugConfiguration) : undefined;
    },
    // After ${command:orrery.pickNode} and friends are substituted: validate, add the cookie.
    async resolveDebugConfigurationWithSubstitutedVariables(folder, config) {
      const settings = client.settings();
      const secrets = new Map<string, string>();
      const node = (config.node as string | undefined) || settings.node;
      if (node) {
        const s = await client.cookieFor(node);
        if (s) secrets.set(node, s);
      }
      const r = resolveDebugConfig(config as Partial<OrreryDebugConfig>, {
        folder: folder?.uri.fsPath ?? client.folder?.uri.fsPath,
        settings,
        cookieFor: (n) => secrets.get(n),
      });
      if (!r.ok) {
        void vscode.window.showErrorMessage(r.message);
        return undefined;
      }
      return r.config as vscode.DebugConfiguration;
    },
  };

  const factory: vscode.DebugAdapterDescriptorFactory = {
    createDebugAdapterDescriptor(session) {
      const found = resolveServerPath({
        setting: client.rawConfig().serverPath,
        workspaceFolder: session.workspaceFolder?.uri.fsPath ?? client.folder?.uri.fsPath,
        envPath: process.env.PATH,
      });
      if (!found.ok) throw new Error(found.message);
      const cwd = typeof session.configuration.cwd === "string" ? session.configuration.cwd : session.workspaceFolder?.uri.fsPath;
      client.output.appendLine(`Debug session "${session.name}": ${found.path} dap (${session.configuration.request})`);
      return new vscode.DebugAdapterExecutable(found.path, ["dap"], { cwd });
    },
  };

  const tracker: vscode.DebugAdapterTrackerFactory = {
    createDebugAdapterTracker(session) {
      return {
        onError: (e) => client.output.appendLine(`[dap] ${session.name}: ${e.message}`),
        onExit: (code, signal) => {
          if (code !== undefined && code !== 0) {
            const msg = `Orrery: the debug adapter (orrery dap) exited with code ${code}${signal ? ` (${signal})` : ""}. If this orrery build has no debugger yet, update it. See the Orrery output.`;
            client.output.appendLine(msg);
            void vscode.window.showErrorMessage(msg, "Show Log").then((p) => p && client.output.show(true));
          }
        },
      };
    },
  };

  ctx.subscriptions.push(
    vscode.debug.registerDebugConfigurationProvider("orrery", provider),
    vscode.debug.registerDebugConfigurationProvider(
      "orrery",
      { provideDebugConfigurations: () => [initialLaunchConfig()] },
      vscode.DebugConfigurationProviderTriggerKind.Dynamic,
    ),
    vscode.debug.registerDebugAdapterDescriptorFactory("orrery", factory),
    vscode.debug.registerDebugAdapterTrackerFactory("orrery", tracker),
  );
}
