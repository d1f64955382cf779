// Which nodes EPMD knows: the NAMES request over TCP (port 4369), with `epmd -names` as a
// fallback. Parsing is pure and unit-tested.

import * as net from "node:net";
import * as os from "node:os";
import { execFile } from "node:child_process";

export interface EpmdName {
  name: string;
  port: number;
}

/** Parse the text of an EPMD NAMES answer or `epmd -names` output. */
export function parseEpmdNames(text: string): EpmdName[] {
  const out: EpmdName[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^name (\S+) at port (\d+)\s*$/.exec(line.trim());
    if (m) out.push({ name: m[1], port: Number(m[2]) });
  }
  return out;
}

/** The host part Erlang uses for `--sname` nodes: the short host name. */
export function shortHostname(hostname: string = os.hostname()): string {
  return hostname.split(".")[0];
}

/** `name@host` for a name EPMD reported on `host` (`localhost`/`127.0.0.1` → this host). */
export function fullNodeName(name: string, host: string = "localhost", thisHost: string = os.hostname()): string {
  const local = host === "localhost" || host === "127.0.0.1" || host === "::1";
  return `${name}@${local ? shortHostname(thisHost) : host}`;
}

/** Ask EPMD on `host` for its names over TCP (`NAMES_REQ`). */
export function queryEpmd(host = "127.0.0.1", port = 4369, timeoutMs = 2000): Promise<EpmdName[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`EPMD on ${host}:${port} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("connect", () => sock.write(Buffer.from([0, 1, 110])));
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === "ECONNREFUSED"
          ? new Error(`no EPMD on ${host}: no Erlang node is running there`)
          : e,
      );
    });
    sock.on("close", () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      if (all.length < 4) {
        reject(new Error(`EPMD on ${host} sent a short answer`));
        return;
      }
      resolve(parseEpmdNames(all.subarray(4).toString("utf8")));
    });
  });
}

/** `epmd -names`, for when the TCP request fails (e.g. EPMD on another port via ERL_EPMD_PORT). */
export function epmdNamesCommand(timeoutMs = 3000): Promise<EpmdName[]> {
  return new Promise((resolve, reject) => {
    execFile("epmd", ["-names"], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`epmd -names failed: ${stderr.trim() || err.message}`));
        return;
      }
      resolve(parseEpmdNames(stdout));
    });
  });
}

/** Names from EPMD on this host: TCP first, then the `epmd` binary. */
export async function localNodes(): Promise<EpmdName[]> {
  const port = Number(process.env.ERL_EPMD_PORT ?? "4369") || 4369;
  try {
    return await queryEpmd("127.0.0.1", port);
  } catch (first) {
    try {
      return await epmdNamesCommand();
    } catch {
      throw first;
    }
  }
}

/** Hide nodes that are Orrery's own helpers (compile nodes) from pickers. */
export function userNodes(names: EpmdName[]): EpmdName[] {
  return names.filter((n) => !/^orrery_(compile|dap|lsp)_/.test(n.name));
}
