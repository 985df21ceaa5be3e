"""Drives QEMU's own Python QMP library (`qemu.qmp`, from PyPI) against a QMP server.

Usage:
  qemu_qmp_client.py basic SOCKET
      negotiate, execute, error, event, exec-oob overtaking a slow in-band command
  qemu_qmp_client.py replay SOCKET COMMANDS_JSON
      execute each [name, arguments] of the list and report every reply

Prints one JSON object on stdout. Exits non-zero on any unexpected failure.
"""
import asyncio
import json
import sys

from qemu.qmp import ExecuteError, QMPClient


def greeting_of(qmp):
    g = qmp.greeting
    return {"capabilities": list(g.QMP.capabilities), "version": dict(g.QMP.version)}


async def basic(sock):
    qmp = QMPClient("interop")
    await asyncio.wait_for(qmp.connect(sock), 10)
    out = {"greeting": greeting_of(qmp)}
    out["version"] = await qmp.execute("query-version")
    try:
        await qmp.execute("no-such-command")
        out["error"] = None
    except ExecuteError as e:
        out["error"] = {"class": e.error_class, "desc": str(e)}
    out["emit"] = await qmp.execute("emit-event", {"name": "TEST_EVENT", "n": 7})
    ev = await asyncio.wait_for(qmp.events.get(), 10)
    out["event"] = {"event": ev["event"], "data": ev.get("data"), "has_timestamp": "timestamp" in ev}
    order = []

    async def run(name, oob):
        await qmp.execute(name, oob=oob)
        order.append(name)

    slow = asyncio.ensure_future(run("slow", False))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(run("fast-oob", True), 10)
    await asyncio.wait_for(slow, 10)
    out["order"] = order
    await qmp.disconnect()
    return out


async def replay(sock, commands):
    qmp = QMPClient("interop-replay")
    await asyncio.wait_for(qmp.connect(sock), 10)
    replies = []
    for name, args in commands:
        try:
            ret = await asyncio.wait_for(qmp.execute(name, args or None), 10)
            replies.append({"return": ret})
        except ExecuteError as e:
            replies.append({"error": {"class": e.error_class, "desc": str(e)}})
    await qmp.disconnect()
    return {"greeting": greeting_of(qmp), "replies": replies}


def main():
    mode, sock = sys.argv[1], sys.argv[2]
    if mode == "basic":
        out = asyncio.run(basic(sock))
    elif mode == "replay":
        out = asyncio.run(replay(sock, json.loads(sys.argv[3])))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
