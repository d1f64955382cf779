import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { fullNodeName, parseEpmdNames, queryEpmd, shortHostname } from "../../src/epmd";

test("parses epmd -names output", () => {
  const out = "epmd: up and running on port 4369 with data:\nname kv_1 at port 42991\nname other at port 43657\n";
  assert.deepEqual(parseEpmdNames(out), [
    { name: "kv_1", port: 42991 },
    { name: "other", port: 43657 },
  ]);
  assert.deepEqual(parseEpmdNames("epmd: Cannot connect to local epmd\n"), []);
});

test("node names use the short host name for local nodes", () => {
  assert.equal(shortHostname("vm.example.org"), "vm");
  assert.equal(fullNodeName("kv", "localhost", "vm.example.org"), "kv@vm");
  assert.equal(fullNodeName("kv", "db1.lan", "vm"), "kv@db1.lan");
});

test("NAMES request over TCP against a fake EPMD", async () => {
  let request: Buffer | undefined;
  const server = net.createServer((sock) => {
    sock.once("data", (d) => {
      request = d;
      const port = Buffer.alloc(4);
      port.writeUInt32BE(4369);
      sock.end(Buffer.concat([port, Buffer.from("name a at port 1\nname b_orrery_x at port 2\n")]));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  try {
    const names = await queryEpmd("127.0.0.1", port, 2000);
    assert.deepEqual(request && [...request], [0, 1, 110]);
    assert.deepEqual(names.map((n) => n.name), ["a", "b_orrery_x"]);
  } finally {
    server.close();
  }
});

test("no EPMD listening: a clear error", async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  await assert.rejects(queryEpmd("127.0.0.1", port, 2000), /no EPMD on 127\.0\.0\.1/);
});
