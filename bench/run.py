"""Runs the benchmark (issue 6) once everything is built; `scripts/bench` calls it.

For each repetition, each workload, each client in turn, in an order shuffled anew for
every repetition and workload (seeded: `--seed`; the seed is printed), so that no
client always runs first or right after another: start a fresh server, run the
client's driver as its own process (so its peak RSS is its own), stop the server.
Then print a Markdown table with ratios of ours to each peer, each with the range of
its per-repetition ratios, check the issue's targets against those ranges (MET only
when the whole range clears the target, MISSED when the whole range misses it,
UNCLEAR otherwise), and write
target/bench/results.json as a list of {"client", "workload", "median", "min", "max",
"unit"} (and each repetition's figure to target/bench/runs.json).

Standard library only. Paths come from the command line (see `scripts/bench`).
"""

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

CLIENTS = ['floor', 'ours', 'qemu.qmp', 'qapi-rs', 'qemu']

# name, driver arguments, unit, higher is better
CALL_WORKLOADS = [
    ('seq', ['calls', '--inflight', '1'], 'calls/s'),
    ('seq-oob', ['calls', '--inflight', '1', '--oob'], 'calls/s'),
    ('inflight32', ['calls', '--inflight', '32'], 'calls/s'),
    ('inflight32-oob', ['calls', '--inflight', '32', '--oob'], 'calls/s'),
    ('inflight256', ['calls', '--inflight', '256'], 'calls/s'),
    ('inflight256-oob', ['calls', '--inflight', '256', '--oob'], 'calls/s'),
]
EVENT_WORKLOADS = [
    ('events1', ['events', '--subscribers', '1'], 'events/s'),
    ('events10', ['events', '--subscribers', '10'], 'events/s'),
    ('events100', ['events', '--subscribers', '100'], 'events/s'),
]
# The in-flight rows again with QEMU pinned to one CPU (`taskset -c 0`): QEMU's
# monitor thread reads each request a byte at a time and hands every command to the
# main thread and back; with the two on one CPU no handoff waits for an idle CPU to
# wake. Without oob these rows, not the client, decide the figure: bench/README.md,
# "Calls in flight without oob". Printed, not rows of results.json.
PINNED_CALL_WORKLOADS = [
    ('inflight32-pinned', ['calls', '--inflight', '32'], 'calls/s'),
    ('inflight256-pinned', ['calls', '--inflight', '256'], 'calls/s'),
]
# Measured and printed, but not rows of results.json (the issue fixes its names).
EXTRA_WORKLOADS = [
    ('events1-raw', ['events', '--subscribers', '1', '--raw'], 'events/s'),
    ('events1-stalled', ['events', '--subscribers', '1', '--stalled'], 'events/s'),
]
# qemu.qmp hands each event to each listener's asyncio queue: with 10 and 100
# subscribers a 200,000-event flood takes it tens of seconds to minutes, so these run
# once per benchmark (their min = max = median) to keep the whole run under 10 minutes;
# so does its stalled-subscriber run (~5 s; only its peak RSS is of interest).
SLOW_PYTHON = {'events10', 'events100', 'events1-stalled'}
ORDER = ([w for w, _, _ in CALL_WORKLOADS] + ['schema', 'rss']
         + [w for w, _, _ in EVENT_WORKLOADS] + ['conns1000', 'ga-ping', 'parse',
                                                   'build-debug', 'build-release'])
UNITS = {w: u for w, _, u in CALL_WORKLOADS + EVENT_WORKLOADS + PINNED_CALL_WORKLOADS
         + EXTRA_WORKLOADS}
UNITS.update({'schema': 'ms/call', 'rss': 'MiB', 'conns1000': 'KiB/conn', 'parse': 'ms',
              'build-debug': 's', 'build-release': 's', 'ga-ping': 'calls/s'})

# What a peer cannot do, printed as a footnote beside each figure it affects (so that
# a ratio is not read as what it is not): (client, workloads, note).
QAPI_RS_ONE_IN_FLIGHT = (
    'qapi-rs 0.15 never uses `oob`: its greeting parser reads the `"oob"` capability '
    'into a catch-all variant, so it believes the server lacks it, sends no ids and '
    'holds its write lock until each reply (see bench/peers/qapi-rs), even after '
    'asking QEMU to enable oob (the `-oob` rows). Its figure is one call at a time '
    'whatever the row asks for: its calls "in flight" wait for each other.')
PEER_LIMITS = [
    ('qapi-rs', {'inflight32', 'inflight256', 'seq-oob', 'inflight32-oob',
                 'inflight256-oob', 'inflight32-pinned', 'inflight256-pinned'},
     QAPI_RS_ONE_IN_FLIGHT),
    ('qapi-rs', {'events10', 'events100'},
     'qapi-rs has one event stream and no subscriptions: the fan-out to several '
     'subscribers (a bounded channel each) is the benchmark driver\'s code.'),
    ('qapi-rs', {'events1-stalled'},
     'qapi-rs: not measured, it has no subscriptions to stall.'),
    ('qemu.qmp', {'events10', 'events100', 'events1-stalled'},
     'qemu.qmp: one run only (tens of seconds to minutes each), so no range.'),
    # None: the whole column (a note on its header).
    ('qemu.qmp', None,
     'qemu.qmp is Python (CPython, asyncio on one thread): it decodes into dicts, not '
     'typed values, and never uses the second core; its figures are the language\'s '
     'as much as the library\'s.'),
    ('qemu.qmp', {'ga-ping'},
     'qemu.qmp (like QEMU\'s qemu-ga-client) syncs with `guest-sync`, not '
     '`guest-sync-delimited`: its JSON reader cannot skip the 0xFF byte before the '
     'delimited reply, so it cannot drop a former client\'s stale replies.'),
    ('qapi-rs', {'ga-ping'},
     'qapi-rs (`QgaStreamTokio`, with the `qapi-qga` 0.13 bindings) syncs with '
     '`guest-sync`, not `guest-sync-delimited`, like qemu.qmp.'),
    ('qemu', {'parse'},
     'qemu: QEMU\'s own front end is Python (one process, one thread).'),
]
SUPERSCRIPT = str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹')
HIGHER_IS_BETTER = {'calls/s', 'events/s'}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Server:
    """A server process on a fresh Unix socket; stopped (and reaped) on exit."""

    def __init__(self, argv_for_socket, wait=30.0):
        self.dir = tempfile.mkdtemp(prefix='qmp-bench-')
        self.path = os.path.join(self.dir, 'qmp.sock')
        self.proc = subprocess.Popen(argv_for_socket(self.path), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors='replace')
                raise RuntimeError(f'server exited early: {err.strip()}')
            if os.path.exists(self.path):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(self.path)
                    # A probe connection: close it without talking; the server goes
                    # on to the next client.
                    return
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.01)
        self.stop()
        raise RuntimeError('server did not come up')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        # The agent's state folder and pid file are in it too.
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def storage_daemon(path):
    return ['qemu-storage-daemon', '--chardev',
            f'socket,id=m,path={path},server=on,wait=off', '--monitor', 'chardev=m']


def storage_daemon_pinned(path):
    return ['taskset', '-c', '0'] + storage_daemon(path)


def system_none(path):
    return ['qemu-system-x86_64', '-M', 'none', '-nodefaults', '-display', 'none',
            '-chardev', f'socket,id=m,path={path},server=on,wait=off',
            '-mon', 'chardev=m,mode=control']


def run_driver(argv, timeout):
    """Runs one driver; returns its result dict, or None (with a log line)."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        log(f'  timed out after {timeout} s: {" ".join(argv)}')
        return {'timeout': True}
    line = p.stdout.decode(errors='replace').strip().splitlines()
    try:
        res = json.loads(line[-1])
    except (IndexError, ValueError):
        log(f'  failed ({p.returncode}): {" ".join(argv)}\n    '
            + p.stderr.decode(errors="replace").strip()[-800:])
        return None
    if not res.get('ok', False):
        log(f'  check failed: {" ".join(argv[-6:])}: {res.get("note")}')
    return res


def measure(server_argv, argv_for_path, timeout):
    """Starts a fresh server, runs one driver against it, stops the server. A server
    that does not come up makes the run fail (logged), not the benchmark."""
    try:
        with Server(server_argv) as srv:
            return run_driver(argv_for_path(srv.path), timeout)
    except RuntimeError as e:
        log(f'  {e}: {" ".join(argv_for_path("SOCKET"))}')
        return None


class Results:
    def __init__(self):
        self.samples = {}   # (client, workload) -> [value]
        self.failed = {}    # (client, workload) -> [note]
        self.failed_values = {}  # (client, workload) -> [value of a failed check]
        self.hwm = {}       # (client, rep) -> max VmHWM KiB over call workloads
        self.extra_hwm = {}  # (client, workload) -> [VmHWM KiB]
        self.extra_hwm_reps = {}  # (client, workload) -> {repetition: VmHWM KiB}
        self.reps = {}      # (client, workload) -> {repetition: value}

    def add(self, client, workload, res, rep=None, rss=False):
        if res is None or res.get('timeout'):
            self.failed.setdefault((client, workload), []).append(
                'timed out' if res else 'driver failed')
            return
        if not res.get('ok', False):
            # The figure is not a result (a check failed) and stays out of
            # results.json, but the table shows it, and the peak RSS stays valid.
            self.failed.setdefault((client, workload), []).append(res.get('note', ''))
            self.failed_values.setdefault((client, workload), []).append(float(res['value']))
            self.extra_hwm.setdefault((client, workload), []).append(res.get('hwm_kib', 0))
            return
        self.samples.setdefault((client, workload), []).append(float(res['value']))
        self.extra_hwm.setdefault((client, workload), []).append(res.get('hwm_kib', 0))
        if rep is not None:
            self.extra_hwm_reps.setdefault((client, workload), {})[rep] = res.get('hwm_kib', 0)
        if rep is not None:
            self.reps.setdefault((client, workload), {})[rep] = float(res['value'])
        if rss and rep is not None:
            k = (client, rep)
            self.hwm[k] = max(self.hwm.get(k, 0), res.get('hwm_kib', 0))

    def finish_rss(self):
        per_client = {}
        for (client, rep), kib in self.hwm.items():
            per_client.setdefault(client, []).append(kib / 1024)
            self.reps.setdefault((client, 'rss'), {})[rep] = kib / 1024
        for client, v in per_client.items():
            self.samples[(client, 'rss')] = v

    def paired(self, workload, a, b, op):
        """op(a's figure, b's figure) for every repetition both have, taking the two
        from the same repetition, which ran minutes apart at most: the machine's
        drift between repetitions (this VM's speed moves by ±20 % within minutes)
        cancels out of each pair. [] without a repetition both have."""
        ra = self.reps.get((a, workload), {})
        rb = self.reps.get((b, workload), {})
        return [op(ra[r], rb[r]) for r in sorted(set(ra) & set(rb))]

    def stat(self, client, workload):
        v = self.samples.get((client, workload))
        if not v:
            return None
        return statistics.median(v), min(v), max(v)


def fmt(v, unit):
    if v is None:
        return '–'
    if unit in ('calls/s', 'events/s'):
        return f'{v:,.0f}'
    if unit in ('ms/call', 'ms', 's', 'MiB', 'KiB/conn'):
        return f'{v:,.1f}' if v >= 10 else f'{v:,.2f}'
    return f'{v:g}'


class Spread:
    """A figure compared over repetitions: the median of the per-repetition values,
    their min and max, and the values themselves (what a target is checked on)."""

    def __init__(self, values):
        self.values = sorted(values)
        self.median = statistics.median(self.values)
        self.min = self.values[0]
        self.max = self.values[-1]

    def text(self, digits=2, suffix='', sign=False):
        f = '+.' if sign else '.'
        m = f'{self.median:{f}{digits}f}'
        if len(self.values) < 2:
            return m + suffix
        dash = ' … ' if sign else '–'
        return f'{m} ({self.min:{f}{digits}f}{dash}{self.max:{f}{digits}f}){suffix}'


def compare(results, workload, other, op):
    """op(ours, other) per repetition both ran (see Results.paired), as a Spread; op of
    the two medians where they share no repetition; None without both figures."""
    values = [v for v in results.paired(workload, 'ours', other, op) if v == v]
    if values:
        return Spread(values)
    a = results.stat('ours', workload)
    b = results.stat(other, workload)
    if not a or not b:
        return None
    v = op(a[0], b[0])
    return Spread([v]) if v == v else None


def ratio(results, workload, other):
    """Ours ÷ other, per repetition (None where other is 0)."""
    return compare(results, workload, other, lambda x, y: x / y if y else float('nan'))


def difference(results, workload, other):
    """Ours − other, per repetition."""
    return compare(results, workload, other, lambda x, y: x - y)


def verdict(spread, threshold, at_least):
    """MET when every per-repetition value clears the threshold, MISSED when none
    does, UNCLEAR when the range straddles it (then the noise decides, not the code)."""
    ok = [(v >= threshold) if at_least else (v <= threshold) for v in spread.values]
    if all(ok):
        return 'MET'
    if not any(ok):
        return 'MISSED'
    return 'UNCLEAR'


def combine(verdicts):
    """Several conditions: MET when all are, MISSED when one is, UNCLEAR otherwise."""
    if all(v == 'MET' for v in verdicts):
        return 'MET'
    if any(v == 'MISSED' for v in verdicts):
        return 'MISSED'
    return 'UNCLEAR'



def machine():
    cpu = ''
    try:
        with open('/proc/cpuinfo', encoding='ascii', errors='replace') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ''
    try:
        with open('/proc/meminfo', encoding='ascii') as f:
            mem = f'{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB RAM'
    except (OSError, ValueError, IndexError):
        pass
    return f'{cpu}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', required=True, help='folder of the Rust drivers')
    ap.add_argument('--python', required=True, help="the venv's python (qemu.qmp)")
    ap.add_argument('--bench-dir', required=True, help='bench/ (the Python drivers)')
    ap.add_argument('--out', required=True, help='target/bench')
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--event-reps', type=int, default=5,
                    help='repetitions of the event, connection and parse workloads '
                         '(at most --reps)')
    ap.add_argument('--calls', type=int, default=5000)
    ap.add_argument('--schema-calls', type=int, default=80)
    ap.add_argument('--events', type=int, default=200_000)
    ap.add_argument('--conns', type=int, default=1000)
    ap.add_argument('--timeout', type=float, default=120)
    ap.add_argument('--qemu-scripts', help="QEMU's scripts/ folder (parse workload)")
    ap.add_argument('--schema', help='qapi/qapi-schema.json (parse workload)')
    ap.add_argument('--parse-runs', type=int, default=10)
    ap.add_argument('--builds', help='JSON file of build times written by scripts/bench')
    ap.add_argument('--idle-server', help='argv (JSON) of our server for conns1000, '
                    'with {socket} for the path')
    ap.add_argument('--versions', help='JSON file of versions written by scripts/bench')
    ap.add_argument('--only', help='comma-separated clients to run')
    ap.add_argument('--workloads',
                    help='comma-separated workloads to run (e.g. events1,conns1000); '
                         'default: all')
    ap.add_argument('--seed', type=int,
                    help='seed of the shuffled client order (default: a random one, '
                         'printed with the results; give it again to rerun that order)')
    ap.add_argument('--parse-unavailable',
                    help='why the parse workload cannot run (printed in the table)')
    ap.add_argument('--quick', action='store_true',
                    help='scripts/bench --quick: parse and builds not run (said so in '
                         'the table)')
    ap.add_argument('--qemu-ga', default=shutil.which('qemu-ga') or '/usr/sbin/qemu-ga',
                    help='the guest agent for ga-ping (default: qemu-ga on PATH, or '
                         '/usr/sbin/qemu-ga)')
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    rng = random.Random(args.seed)
    log(f'client order seed {args.seed} (--seed {args.seed} reruns this order)')

    b = args.bin
    drivers = {
        'floor': [os.path.join(b, 'floor')],
        'ours': [os.path.join(b, 'ours')],
        'qemu.qmp': [args.python, os.path.join(args.bench_dir, 'qemu_qmp_client.py')],
        'qapi-rs': [os.path.join(b, 'bench-qapi-rs')],
    }
    missing = [c for c in ('floor', 'ours', 'qapi-rs') if not os.access(drivers[c][0], os.X_OK)]
    for c in missing:
        log(f'{c}: no driver at {drivers[c][0]}: not measured')
        del drivers[c]
    if args.only:
        keep = set(args.only.split(','))
        drivers = {c: d for c, d in drivers.items() if c in keep}
    bench_server = os.path.join(b, 'bench-server')

    load_start = os.getloadavg()
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    res = Results()
    common = ['--calls', str(args.calls)]

    def flood(path):
        return [bench_server, 'flood', '--socket', path, '--events', str(args.events)]

    if args.idle_server:
        idle_argv = json.loads(args.idle_server)
        idle_name = 'our qmp::server'
    else:
        idle_argv = [bench_server, 'idle', '--socket', '{socket}']
        idle_name = 'the benchmark\'s idle server'

    def idle(path):
        return [a.replace('{socket}', path) for a in idle_argv]

    def agent(path):
        # A fresh qemu-ga per run (it may exit when a client hangs up with replies
        # unread), its state and pid file beside its socket in the run's temp folder.
        d = os.path.dirname(path)
        os.makedirs(os.path.join(d, 'state'), exist_ok=True)
        return [args.qemu_ga, '-m', 'unix-listen', '-p', path, '-t', os.path.join(d, 'state'),
                '-f', os.path.join(d, 'qemu-ga.pid')]

    orders = []  # (repetition, workload, [client]): the order each ran in

    def shuffled(workload, clients, rep):
        """The clients in the order they run this workload in this repetition."""
        order = list(clients)
        rng.shuffle(order)
        orders.append({'rep': rep, 'workload': workload, 'order': order})
        return order

    wanted = set(args.workloads.split(',')) if args.workloads else None

    def on(workload):
        return wanted is None or workload in wanted

    for rep in range(args.reps):
        log(f'repetition {rep + 1}/{args.reps} ({time.monotonic() - t0:.0f} s)')
        # The pinned rows' peak RSS is the unpinned ones' again: only theirs is kept.
        call_runs = ([(w, storage_daemon, True) for w in CALL_WORKLOADS]
                     + [(w, storage_daemon_pinned, False) for w in PINNED_CALL_WORKLOADS])
        for (name, wargs, _unit), server, rss in call_runs:
            if not on(name):
                continue
            for client in shuffled(name, drivers, rep):
                r = measure(server,
                            lambda p, a=drivers[client], w=wargs: a + w + common + ['--socket', p],
                            args.timeout)
                res.add(client, name, r, rep, rss=rss)
        if on('schema'):
            for client in shuffled('schema', drivers, rep):
                r = measure(system_none,
                            lambda p, a=drivers[client]: a + ['schema', '--calls',
                                                             str(args.schema_calls), '--socket', p],
                            args.timeout)
                res.add(client, 'schema', r, rep, rss=True)
        if on('ga-ping'):
            for client in shuffled('ga-ping', drivers, rep):
                r = measure(agent,
                            lambda p, a=drivers[client]: a + ['ga-ping'] + common + ['--socket', p],
                            args.timeout)
                res.add(client, 'ga-ping', r, rep)
        if rep < args.event_reps:
            for name, wargs, _unit in EVENT_WORKLOADS + EXTRA_WORKLOADS:
                if not on(name):
                    continue
                for client in shuffled(name, drivers, rep):
                    if client == 'qapi-rs' and '--stalled' in wargs:
                        continue  # no subscriptions to stall: see its driver
                    if '--raw' in wargs and client != 'ours':
                        continue  # the others are raw already, or typed only
                    if client == 'qemu.qmp' and name in SLOW_PYTHON and rep > 0:
                        continue  # one run: tens of seconds each (see SLOW_PYTHON)
                    r = measure(flood,
                                lambda p, a=drivers[client], w=wargs: a + w + [
                                    '--events', str(args.events), '--socket', p],
                                args.timeout)
                    res.add(client, name, r, rep)
            if on('conns1000'):
                for client in shuffled('conns1000', drivers, rep):
                    r = measure(idle,
                                lambda p, a=drivers[client]: a + ['conns', '--conns',
                                                                 str(args.conns), '--socket', p],
                                args.timeout)
                    res.add(client, 'conns1000', r, rep)
            if args.schema and args.qemu_scripts and on('parse'):
                parsers = {'qemu': [args.python, os.path.join(args.bench_dir,
                                                              'qemu_qapi_parse.py'),
                                    args.qemu_scripts]}
                if os.access(os.path.join(b, 'ours-parse'), os.X_OK):
                    parsers['ours'] = [os.path.join(b, 'ours-parse')]
                for client in shuffled('parse', parsers, rep):
                    r = run_driver(parsers[client] + [args.schema, str(args.parse_runs)],
                                   args.timeout * 3)
                    res.add(client, 'parse', r, rep)
    res.finish_rss()
    if args.builds and os.path.exists(args.builds):
        with open(args.builds, encoding='utf-8') as f:
            for row in json.load(f):
                # Build i of ours and build i of the peer ran back to back (which
                # one first alternates): a pair.
                for i, v in zip(row.get('reps', range(len(row['values']))), row['values']):
                    res.add(row['client'], row['workload'], {'value': v, 'ok': True}, rep=i)
    load_end = os.getloadavg()
    elapsed = time.monotonic() - t0

    rows = []
    for w in ORDER:
        for c in CLIENTS:
            s = res.stat(c, w)
            if s:
                rows.append({'client': c, 'workload': w, 'median': s[0], 'min': s[1],
                             'max': s[2], 'unit': UNITS[w]})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'results.json'), 'w', encoding='utf-8') as f:
        json.dump(rows, f, indent=1)
        f.write('\n')
    # Each repetition's figure, to see the noise behind a median (and which
    # repetitions a paired ratio compared).
    runs = [{'client': c, 'workload': w, 'unit': UNITS[w],
             'runs': [res.reps[(c, w)][r] for r in sorted(res.reps[(c, w)])]}
            for w in ORDER for c in CLIENTS if res.reps.get((c, w))]
    with open(os.path.join(args.out, 'runs.json'), 'w', encoding='utf-8') as f:
        json.dump(runs, f, indent=1)
        f.write('\n')
    # The order the clients ran in, and the seed that gives it again.
    with open(os.path.join(args.out, 'order.json'), 'w', encoding='utf-8') as f:
        json.dump({'seed': args.seed, 'runs': orders}, f, indent=1)
        f.write('\n')

    versions = {}
    if args.versions and os.path.exists(args.versions):
        with open(args.versions, encoding='utf-8') as f:
            versions = json.load(f)
    report(res, args, started, elapsed, load_start, load_end, versions, idle_name)


def report(res, args, started, elapsed, load_start, load_end, versions, idle_name):
    out = []
    p = out.append
    p(f'### Benchmark results ({started:%Y-%m-%d %H:%M} UTC)')
    p('')
    p(f'Machine: {machine()}. Load average {load_start[0]:.2f} at the start, '
      f'{load_end[0]:.2f} at the end; the run took {elapsed:.0f} s.')
    if versions:
        p('Versions: ' + '; '.join(f'{k} {v}' for k, v in versions.items()) + '.')
    ev = min(args.reps, args.event_reps)
    p(f'{args.reps} repetitions ({ev} for events, connections and parse; qemu.qmp '
      f'events10/events100/events1-stalled: 1), a fresh server and client process each; '
      f'{args.calls:,} calls per run (`seq`…, `ga-ping`), {args.schema_calls} schema '
      f'calls, {args.events:,} events, {args.conns:,} idle connections to {idle_name}. '
      f'In each repetition the clients ran each workload in a shuffled order (seed '
      f'{args.seed}: `scripts/bench --seed {args.seed}` reruns the same order; '
      '`target/bench/order.json` lists it). Each figure is the median of its runs with '
      '(min–max). Each ratio is the median of per-repetition ratios (ours and the other '
      'client in the same repetition, so the machine\'s drift between repetitions '
      'cancels out; it can differ from the ratio of the two medians shown), with the '
      'range of those per-repetition ratios: a range that crosses 1.00 (or a target) '
      'means this machine\'s noise is larger than the difference.')
    if args.quick:
        p('')
        p('Not run (`--quick`): parse, build-debug, build-release.')
    if args.parse_unavailable:
        p('')
        p(f'**parse: NOT MEASURED: {args.parse_unavailable}**')
    p('')

    # Footnotes, numbered in order of first use.
    notes = []

    def mark(client, workload):
        m = ''
        for c, workloads, text in PEER_LIMITS:
            if c == client and workloads is not None and workload in workloads:
                if text not in notes:
                    notes.append(text)
                m += str(notes.index(text) + 1).translate(SUPERSCRIPT)
        return m

    header = []
    for c in CLIENTS:
        h = c
        for c2, workloads, text in PEER_LIMITS:
            if c2 == c and workloads is None:
                if text not in notes:
                    notes.append(text)
                h += str(notes.index(text) + 1).translate(SUPERSCRIPT)
        header.append(h)
    p('| workload | unit | ' + ' | '.join(header) + ' | '
      'ours ÷ floor | ours ÷ qemu.qmp | ours ÷ qapi-rs | ours ÷ qemu |')
    p('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    extra = [x for x, _, _ in PINNED_CALL_WORKLOADS + EXTRA_WORKLOADS]
    for w in ORDER + extra:
        unit = UNITS[w]
        shown = any(res.stat(c, w) or (c, w) in res.failed for c in CLIENTS) or (
            w == 'parse' and args.parse_unavailable)
        if not shown:
            continue  # (and its footnotes are not numbered)
        cells = []
        any_value = False
        for c in CLIENTS:
            s = res.stat(c, w)
            if s:
                any_value = True
                cell = fmt(s[0], unit)
                if s[1] != s[2]:
                    cell += f' ({fmt(s[1], unit)}–{fmt(s[2], unit)})'
            elif (c, w) in res.failed_values:
                v = statistics.median(res.failed_values[(c, w)])
                cell = f'failed ({fmt(v, unit)})'
                any_value = True
            elif (c, w) in res.failed:
                cell = 'failed'
                any_value = True
            elif w == 'parse' and args.parse_unavailable and c in ('ours', 'qemu'):
                cell = '**NOT MEASURED**'
                any_value = True
            else:
                cell = '–'
            m = mark(c, w)
            if m and (cell != '–' or w == 'events1-stalled'):
                cell += m
            cells.append(cell)
        if not any_value:
            continue
        ratios = []
        for other in ('floor', 'qemu.qmp', 'qapi-rs', 'qemu'):
            r = ratio(res, w, other)
            cell = '–' if r is None else r.text()
            if r is not None:
                cell += mark(other, w)
            ratios.append(cell)
        label = w if w not in extra else f'({w})'
        p(f'| {label} | {unit} | ' + ' | '.join(cells) + ' | ' + ' | '.join(ratios) + ' |')
    p('')
    for i, text in enumerate(notes):
        p(f'{str(i + 1).translate(SUPERSCRIPT)} {text}')
    if notes:
        p('')
    p('Higher is better for calls/s and events/s, lower for the rest. "failed (x)": '
      'a check failed (e.g. a subscriber missed events); x is the figure of that run, '
      'not a result, and not in results.json. `events1-raw`: '
      'ours with a raw subscription (the others are raw or typed only); '
      '`events1-stalled`: one reading subscriber plus one that never reads. `ga-ping`: '
      'sequential `guest-ping` to a fresh host `qemu-ga` per run, after one sync. '
      '`inflight32-pinned`, `inflight256-pinned`: the in-flight rows with QEMU pinned '
      'to one CPU (`taskset -c 0`), see bench/README.md, "Calls in flight without oob".')
    hw = []
    for c in CLIENTS:
        for w in ('events1', 'events100', 'events1-stalled'):
            v = res.extra_hwm.get((c, w))
            if v:
                hw.append(f'{c} {w} {statistics.median(v) / 1024:.1f} MiB')
    if hw:
        p('Peak RSS during the event floods: ' + ', '.join(hw) + '.')
    for (c, w), failed in sorted(res.failed.items()):
        p(f'- {c} {w}: {len(failed)} run(s) failed: {"; ".join(sorted(set(failed)))[:300]}')
    p('')
    p('#### Targets (issue 6)')
    p('')
    p('MET: every repetition\'s ratio (or difference) clears the target; MISSED: none '
      'does; UNCLEAR (range straddles): some do and some do not, so this run cannot tell.')
    p('')
    for line in targets(res):
        p(f'- {line}')
    print('\n'.join(out))


def targets(res):
    lines = []

    def r(w, other):
        return ratio(res, w, other)

    def check(desc, conditions):
        """conditions: [(label, Spread, threshold, at_least, digits, suffix)]."""
        verdicts = []
        details = []
        for label, spread, threshold, at_least, digits, suffix in conditions:
            verdicts.append(verdict(spread, threshold, at_least))
            signed = suffix.endswith('ms') or suffix.endswith('MiB')
            details.append(spread.text(digits, suffix, sign=signed) + label)
        v = combine(verdicts)
        if v == 'UNCLEAR':
            v = 'UNCLEAR (range straddles)'
        if any(len(c[1].values) < 2 for c in conditions):
            details.append('one repetition: no range to judge the noise by')
        lines.append(f'{v}: {desc} ({", ".join(details)})')

    def unmeasured(desc, why):
        lines.append(f'NOT MEASURED: {desc} ({why})')

    f = r('seq', 'floor')
    if f:
        check('sequential: ours ≥ 0.95 × floor', [('', f, 0.95, True, 2, ' ×')])
    else:
        unmeasured('sequential: ours ≥ 0.95 × floor', 'a figure is missing')
    for w in ('inflight32-oob', 'inflight256-oob'):
        f, q = r(w, 'floor'), r(w, 'qemu.qmp')
        if f and q:
            check(f'{w}: ours ≥ 0.95 × floor and ≥ 1.15 × qemu.qmp',
                  [(' floor', f, 0.95, True, 2, ' ×'), (' qemu.qmp', q, 1.15, True, 2, ' ×')])
        else:
            unmeasured(f'{w}: ours ≥ 0.95 × floor, ≥ 1.15 × qemu.qmp', 'a figure is missing')
    d = difference(res, 'schema', 'floor')
    if d is not None:
        check('typed query-qmp-schema: ours within 1 ms of the floor',
              [('', d, 1.0, False, 2, ' ms')])
    else:
        unmeasured('query-qmp-schema within 1 ms of the floor', 'a figure is missing')
    d = difference(res, 'rss', 'floor')
    if d is not None:
        check('peak RSS: ours within 2 MiB of the floor', [('', d, 2.0, False, 1, ' MiB')])
    else:
        unmeasured('peak RSS within 2 MiB of the floor', 'a figure is missing')
    so = res.extra_hwm_reps.get(('ours', 'events1-stalled'), {})
    sf = res.extra_hwm_reps.get(('floor', 'events1-stalled'), {})
    both = sorted(set(so) & set(sf))
    if both:
        d = Spread([(so[i] - sf[i]) / 1024 for i in both])
        check('peak RSS during a flood with a stalled subscriber: within 2 MiB of the floor',
              [('', d, 2.0, False, 1, ' MiB')])
    else:
        unmeasured('peak RSS with a stalled subscriber', 'a figure is missing')
    f, q = r('events1', 'floor'), r('events1', 'qapi-rs')
    if f and q:
        check('events into the typed Event enum, 1 subscriber: ≥ floor (Value) and '
              '≥ 1.2 × qapi-rs',
              [(' floor', f, 1.0, True, 2, ' ×'), (' qapi-rs', q, 1.2, True, 2, ' ×')])
    else:
        unmeasured('events1 ≥ floor and ≥ 1.2 × qapi-rs', 'a figure is missing')
    for w in ('build-debug', 'build-release'):
        q = r(w, 'qapi-rs')
        if q:
            check(f'{w}: ours ≤ 0.7 × qapi-rs', [('', q, 0.7, False, 2, ' ×')])
        else:
            unmeasured(f'{w}: ours ≤ 0.7 × qapi-rs', 'not run (--quick) or a build failed')
    return lines


if __name__ == '__main__':
    main()
