// The Orrery side bar: the supervision tree and the busiest processes, state on hover.

import * as vscode from "vscode";
import type { OrreryClient } from "./client";
import { processLabel, supLabel } from "./format";
import {
  Methods,
  type ProcessesResult,
  type StateResult,
  type SupTree,
  type SupervisionTreeResult,
} from "./protocol";
import { errorText } from "./messages";

type Item =
  | { kind: "node"; node: string; apps: SupervisionTreeResult["nodes"][number]["applications"] }
  | { kind: "app"; node: string; application: string; tree: SupTree | null }
  | { kind: "proc"; node: string; tree: SupTree }
  | { kind: "message"; text: string; detail?: string };

/** A tooltip with a process's live state, fetched when the user hovers the item. */
async function stateTooltip(client: OrreryClient, pid: string, title: string): Promise<vscode.MarkdownString> {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${title}**\n\n`);
  try {
    const r = await client.request<StateResult>(Methods.state, { target: pid });
    for (const p of r.processes) {
      md.appendMarkdown(`\`${p.pid ?? pid}\` on \`${p.node}\` · queue ${p.messageQueueLen ?? "?"}\n`);
      if (p.stateAvailable && p.state) md.appendCodeblock(p.state, "elixir");
      else md.appendMarkdown("\n_(no gen_server state)_");
    }
  } catch (e) {
    md.appendMarkdown(`_state unavailable: ${errorText(e)}_`);
  }
  return md;
}

export class SupervisionTreeProvider implements vscode.TreeDataProvider<Item> {
  private readonly changed = new vscode.EventEmitter<Item | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly client: OrreryClient) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  async getChildren(item?: Item): Promise<Item[]> {
    if (item === undefined) {
      if (!this.client.running) return [];
      let r: SupervisionTreeResult;
      try {
        r = await this.client.request<SupervisionTreeResult>(Methods.supervisionTree);
      } catch (e) {
        return [{ kind: "message", text: "Not attached", detail: errorText(e) }];
      }
      if (r.nodes.length === 1) {
        const n = r.nodes[0];
        return n.applications.map((a) => ({ kind: "app", node: n.node, application: a.application, tree: a.tree }));
      }
      return r.nodes.map((n) => ({ kind: "node", node: n.node, apps: n.applications }));
    }
    switch (item.kind) {
      case "node":
        return item.apps.map((a) => ({ kind: "app", node: item.node, application: a.application, tree: a.tree }));
      case "app":
        return item.tree ? [{ kind: "proc", node: item.node, tree: item.tree }] : [];
      case "proc":
        return (item.tree.children ?? []).map((t) => ({ kind: "proc", node: item.node, tree: t }));
      default:
        return [];
    }
  }

  getTreeItem(item: Item): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (item.kind) {
      case "node": {
        const t = new vscode.TreeItem(item.node, C.Expanded);
        t.iconPath = new vscode.ThemeIcon("server");
        t.contextValue = "node";
        return t;
      }
      case "app": {
        const t = new vscode.TreeItem(item.application, item.tree ? C.Collapsed : C.None);
        t.iconPath = new vscode.ThemeIcon("package");
        t.description = item.tree ? undefined : "no supervisor";
        t.contextValue = "application";
        return t;
      }
      case "proc": {
        const { label, description, kind } = supLabel(item.tree);
        const hasChildren = (item.tree.children ?? []).length > 0;
        const t = new vscode.TreeItem(label, hasChildren ? C.Collapsed : C.None);
        t.description = description;
        t.iconPath = new vscode.ThemeIcon(kind === "supervisor" ? "type-hierarchy" : "symbol-event");
        t.contextValue = `process ${kind}`;
        t.id = `${item.node}/${item.tree.pid ?? label}`;
        return t;
      }
      case "message": {
        const t = new vscode.TreeItem(item.text, C.None);
        t.description = item.detail;
        t.tooltip = item.detail;
        t.iconPath = new vscode.ThemeIcon("info");
        return t;
      }
    }
  }

  async resolveTreeItem(t: vscode.TreeItem, item: Item): Promise<vscode.TreeItem> {
    if (item.kind === "proc" && item.tree.pid && item.tree.type !== "supervisor") {
      t.tooltip = await stateTooltip(this.client, item.tree.pid, supLabel(item.tree).label);
    }
    return t;
  }
}

type ProcItem = { kind: "node"; node: string; total?: number | null; items: ProcessesResult["nodes"][number]["items"] } | {
  kind: "proc";
  node: string;
  p: ProcessesResult["nodes"][number]["items"][number];
} | { kind: "message"; text: string; detail?: string };

export class ProcessesProvider implements vscode.TreeDataProvider<ProcItem> {
  private readonly changed = new vscode.EventEmitter<ProcItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly client: OrreryClient) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  async getChildren(item?: ProcItem): Promise<ProcItem[]> {
    if (item === undefined) {
      if (!this.client.running) return [];
      let r: ProcessesResult;
      try {
        r = await this.client.request<ProcessesResult>(Methods.processes, { sort: "memory", offset: 0, limit: 50 });
      } catch (e) {
        return [{ kind: "message", text: "Not attached", detail: errorText(e) }];
      }
      if (r.nodes.length === 1) return r.nodes[0].items.map((p) => ({ kind: "proc", node: r.nodes[0].node, p }));
      return r.nodes.map((n) => ({ kind: "node", node: n.node, total: n.total, items: n.items }));
    }
    if (item.kind === "node") return item.items.map((p) => ({ kind: "proc", node: item.node, p }));
    return [];
  }

  getTreeItem(item: ProcItem): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    if (item.kind === "node") {
      const t = new vscode.TreeItem(item.node, C.Expanded);
      t.description = item.total ? `${item.total} processes` : undefined;
      t.iconPath = new vscode.ThemeIcon("server");
      return t;
    }
    if (item.kind === "message") {
      const t = new vscode.TreeItem(item.text, C.None);
      t.description = item.detail;
      return t;
    }
    const { label, description } = processLabel(item.p);
    const t = new vscode.TreeItem(label, C.None);
    t.description = description;
    t.iconPath = new vscode.ThemeIcon("symbol-event");
    t.contextValue = "process";
    t.id = `${item.node}/${item.p.pid ?? label}`;
    return t;
  }

  async resolveTreeItem(t: vscode.TreeItem, item: ProcItem): Promise<vscode.TreeItem> {
    if (item.kind === "proc" && item.p.pid) t.tooltip = await stateTooltip(this.client, item.p.pid, processLabel(item.p).label);
    return t;
  }
}

/** The target (pid) to inspect for a tree item the inline action was clicked on. */
export function targetOfTreeItem(item: unknown): string | undefined {
  if (!item || typeof item !== "object") return undefined;
  const i = item as { kind?: string; tree?: SupTree; p?: { pid?: string | null } };
  if (i.kind === "proc") return i.tree?.pid ?? i.p?.pid ?? undefined;
  return undefined;
}
