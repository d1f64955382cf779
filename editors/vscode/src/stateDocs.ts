// Read-only `orrery:` documents showing a process's full live state (orrery/state).

import * as vscode from "vscode";
import type { OrreryClient } from "./client";
import { stateDocument, stateUri, targetFromQuery } from "./format";
import { errorText } from "./messages";
import { Methods, type StateResult } from "./protocol";

export const SCHEME = "orrery";

export class StateDocuments implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly client: OrreryClient) {}

  uriFor(target: string): vscode.Uri {
    const { path, query } = stateUri(target);
    return vscode.Uri.from({ scheme: SCHEME, path, query });
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const target = targetFromQuery(uri.query) ?? uri.path.replace(/^\/state\//, "").replace(/\.exs$/, "");
    try {
      const r = await this.client.request<StateResult>(Methods.state, { target });
      return stateDocument(r);
    } catch (e) {
      return `# Orrery could not read the state of ${target}:\n# ${errorText(e).replace(/\n/g, "\n# ")}\n`;
    }
  }

  async open(target: string): Promise<vscode.TextEditor> {
    const uri = this.uriFor(target);
    this.changed.fire(uri);
    const doc = await vscode.workspace.openTextDocument(uri);
    return vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
  }

  refresh(uri: vscode.Uri): void {
    if (uri.scheme === SCHEME) this.changed.fire(uri);
  }
}
