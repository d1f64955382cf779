// Shapes of Orrery's custom requests (see the server's lsp/custom.rs and live/views.rs).

export interface NodeInfo {
  name: string;
  otp?: string;
  elixir?: string;
  agent?: boolean;
}

export interface StatusResult {
  attached: boolean;
  status?: { state?: string; reason?: string } | string | null;
  reason?: string | null;
  node?: string | null;
  nodes?: NodeInfo[];
  mode?: string;
  managedPid?: number | null;
  allowWrites?: boolean;
}

export interface SupTree {
  name?: string | null;
  pid?: string | null;
  type?: string | null;
  module?: string | null;
  childCount?: number | null;
  children?: SupTree[];
}

export interface SupervisionTreeResult {
  nodes: { node: string; applications: { application: string; tree: SupTree | null }[] }[];
}

export interface ProcessItem {
  pid?: string | null;
  name?: string | null;
  module?: string | null;
  memory?: number | null;
  reductions?: number | null;
  messageQueueLen?: number | null;
  currentFunction?: string | null;
}

export interface ProcessesResult {
  sort: string;
  offset: number;
  nodes: { node: string; total?: number | null; items: ProcessItem[] }[];
}

export interface StateProcess {
  node: string;
  pid?: string | null;
  state?: string | null;
  stateAvailable?: boolean;
  messageQueueLen?: number | null;
  memory?: number | null;
  reductions?: number | null;
}

export interface StateResult {
  target: string;
  processes: StateProcess[];
}

export const Methods = {
  status: "orrery/status",
  processes: "orrery/processes",
  supervisionTree: "orrery/supervisionTree",
  ets: "orrery/ets",
  state: "orrery/state",
} as const;

/** Server-side commands (workspace/executeCommand). */
export const ServerCommands = {
  inspectState: "orrery.inspectState",
  status: "orrery.status",
  hotSwap: "orrery.hotSwap",
  rollback: "orrery.rollback",
} as const;
