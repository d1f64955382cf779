#!/usr/bin/env python3
"""A tiny static language server for the editor tests: the stand-in for Expert or
ElixirLS beside Orrery. It answers initialize, hover, completion, documentSymbol and
definition with fixed markers ("STATIC-LS"), so a test can tell its answers from
Orrery's, and exits on `exit` or when stdin closes. Standard library only.

Usage: static_ls.py [--log FILE]   (FILE gets one line per message received)
"""
import json
import sys

LOG = None
if len(sys.argv) > 2 and sys.argv[1] == "--log":
    LOG = open(sys.argv[2], "a", encoding="utf-8")


def read():
    length = None
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    if length is None:
        return None
    return json.loads(sys.stdin.buffer.read(length).decode("utf-8"))


def write(msg):
    body = json.dumps(msg).encode("utf-8")
    sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    sys.stdout.buffer.flush()


def zero_range():
    return {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}


def answer(method, params):
    if method == "initialize":
        return {
            "capabilities": {
                "textDocumentSync": 1,
                "hoverProvider": True,
                "completionProvider": {"triggerCharacters": ["."]},
                "documentSymbolProvider": True,
                "definitionProvider": True,
            },
            "serverInfo": {"name": "static-ls", "version": "1"},
        }
    if method == "textDocument/hover":
        return {"contents": {"kind": "markdown", "value": "STATIC-LS hover"}}
    if method == "textDocument/completion":
        return {"isIncomplete": False,
                "items": [{"label": "static_ls_completion", "kind": 3}]}
    if method == "textDocument/documentSymbol":
        return [{"name": "StaticLsSymbol", "kind": 2, "range": zero_range(),
                 "selectionRange": zero_range()}]
    if method == "textDocument/definition":
        uri = params["textDocument"]["uri"]
        return {"uri": uri, "range": zero_range()}
    return None


def main():
    while True:
        msg = read()
        if msg is None:
            return
        method = msg.get("method")
        if LOG:
            LOG.write("%s\n" % method)
            LOG.flush()
        if method == "exit":
            return
        if "id" in msg and method is not None:
            write({"jsonrpc": "2.0", "id": msg["id"],
                   "result": answer(method, msg.get("params") or {})})


if __name__ == "__main__":
    main()
