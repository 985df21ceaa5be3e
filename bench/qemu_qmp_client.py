"""The `qemu.qmp` driver of the benchmark (QEMU's own Python QMP library, from PyPI).

Takes the same command line as the Rust drivers (see bench/src/lib.rs):
    qemu_qmp_client.py calls|schema|events|conns|ga-ping --socket PATH [--calls N]
        [--inflight N] [--oob] [--subscribers N] [--events N] [--conns N] [--stalled]
and prints one JSON line: {"value", "unit", "hwm_kib", "ok", "note"}.

`qemu.qmp` negotiates `oob` whenever the server offers it; without `--oob` the driver
hides the capability from it before negotiation, so that both modes can be measured.
It has no typed bindings: replies and events are the dicts it returns.

`ga-ping` talks to the guest agent the way QEMU's own `qemu-ga-client`
(python/qemu/utils/qemu_ga_client.py) does: no greeting to wait for, no negotiation
(`await_greeting` and `negotiate` off before `connect`), and a `guest-sync` with a
random id first (its JSON reader cannot skip the 0xFF byte `guest-sync-delimited`
puts before its reply).
"""

import argparse
import asyncio
import json
import random
import sys
import time

from qemu.qmp import EventListener, QMPClient


class Client(QMPClient):
    """A `QMPClient` that negotiates `oob` only when asked to."""

    def __init__(self, oob: bool):
        super().__init__()
        self._want_oob = oob

    async def _negotiate(self) -> None:
        greeting = self._greeting
        if greeting is not None and not self._want_oob:
            caps = greeting.QMP.capabilities
            greeting.QMP.capabilities = [c for c in caps if c != 'oob']
        await super()._negotiate()


def status_kib(field: str) -> int:
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def finish(value: float, unit: str, ok: bool = True, note: str = '') -> None:
    print(json.dumps({'value': value, 'unit': unit,
                      'hwm_kib': status_kib('VmHWM'), 'ok': ok, 'note': note}))
    sys.stdout.flush()
    sys.exit(0 if ok else 1)


async def connect(args, oob: bool) -> Client:
    qmp = Client(oob)
    await qmp.connect(args.socket)
    return qmp


async def calls(args) -> None:
    qmp = await connect(args, args.oob)
    remaining = args.calls
    bad = []

    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            ret = await qmp.execute('query-version')
            if not isinstance(ret['qemu']['major'], int):
                bad.append(ret)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.inflight)))
    elapsed = time.perf_counter() - start
    await qmp.disconnect()
    finish(args.calls / elapsed, 'calls/s', not bad, f'{len(bad)} bad replies' if bad else '')


async def schema(args) -> None:
    qmp = await connect(args, args.oob)
    start = time.perf_counter()
    for _ in range(args.calls):
        ret = await qmp.execute('query-qmp-schema')
        if not ret:
            finish(0, 'ms/call', False, 'empty schema')
    elapsed = time.perf_counter() - start
    await qmp.disconnect()
    finish(elapsed * 1e3 / args.calls, 'ms/call')


async def events(args) -> None:
    qmp = Client(args.oob)
    listeners = [EventListener() for _ in range(args.subscribers)]
    # Registered before connecting: the flood starts right after negotiation.
    for listener in listeners:
        qmp.register_listener(listener)
    if args.stalled:
        qmp.register_listener(EventListener())  # never read

    async def consume(listener):
        n = 0
        while n < args.events:
            event = await listener.get()
            if isinstance(event['event'], str):
                n += 1
        return n

    await qmp.connect(args.socket)
    start = time.perf_counter()
    # The flood starts after the reply to this (see bench-server).
    tasks = [asyncio.create_task(consume(l)) for l in listeners]
    await qmp.execute('query-version')
    counts = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await qmp.disconnect()
    ok = all(n == args.events for n in counts)
    finish(args.events / elapsed, 'events/s', ok,
           '' if ok else f'received {counts} of {args.events}')


async def conns(args) -> None:
    before = status_kib('VmRSS')
    held = [await connect(args, False) for _ in range(args.conns)]
    after = status_kib('VmRSS')
    per = (after - before) / args.conns
    for qmp in held:
        await qmp.disconnect()
    finish(per, 'KiB/conn', True, f'{len(held)} connections')


async def ga_ping(args) -> None:
    qga = QMPClient()
    qga.await_greeting = False
    qga.negotiate = False
    await qga.connect(args.socket)
    uid = random.randint(0, (1 << 31) - 1)
    ret = await qga.execute('guest-sync', {'id': uid})
    if ret != uid:
        finish(0, 'calls/s', False, f'guest-sync returned {ret!r}, expected {uid}')
    start = time.perf_counter()
    for _ in range(args.calls):
        ret = await qga.execute('guest-ping')
        if ret != {}:
            finish(0, 'calls/s', False, f'guest-ping returned {ret!r}')
    elapsed = time.perf_counter() - start
    await qga.disconnect()
    finish(args.calls / elapsed, 'calls/s')


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('workload', choices=['calls', 'schema', 'events', 'conns', 'ga-ping'])
    p.add_argument('--socket', required=True)
    p.add_argument('--calls', type=int, default=5000)
    p.add_argument('--inflight', type=int, default=1)
    p.add_argument('--oob', action='store_true')
    p.add_argument('--subscribers', type=int, default=1)
    p.add_argument('--events', type=int, default=200_000)
    p.add_argument('--conns', type=int, default=1000)
    p.add_argument('--stalled', action='store_true')
    p.add_argument('--raw', action='store_true')  # qemu.qmp events are always raw
    args = p.parse_args()
    asyncio.run({'calls': calls, 'schema': schema, 'events': events,
                 'conns': conns, 'ga-ping': ga_ping}[args.workload](args))


if __name__ == '__main__':
    main()
