"""QEMU's own QAPI front end (scripts/qapi from QEMU's source), timed like ours-parse.

    qemu_qapi_parse.py SCRIPTS_DIR SCHEMA [RUNS]

SCRIPTS_DIR is the folder holding the `qapi` package (QEMU's `scripts/`). Prints the
drivers' result line with the median milliseconds of RUNS runs (default 10) of
`QAPISchema(SCHEMA)`, which parses and checks the schema, after one untimed warm-up.
"""

import json
import sys
import time


def status_kib(field: str) -> int:
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit('usage: qemu_qapi_parse.py SCRIPTS_DIR SCHEMA [RUNS]')
    sys.path.insert(0, sys.argv[1])
    from qapi.schema import QAPISchema  # pylint: disable=import-outside-toplevel
    path = sys.argv[2]
    runs = max(1, int(sys.argv[3]) if len(sys.argv) > 3 else 10)
    entities = len(list(QAPISchema(path)._entity_list))  # pylint: disable=protected-access
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        QAPISchema(path)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({'value': times[len(times) // 2], 'unit': 'ms',
                      'hwm_kib': status_kib('VmHWM'), 'ok': True,
                      'note': f'{entities} entities'}))


if __name__ == '__main__':
    main()
