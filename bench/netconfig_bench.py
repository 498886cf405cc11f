"""Fetching many network devices (issue 19's target: 200 devices in < 60 s with bounded
concurrency): N devices, all the scripted Huawei device of tests/ssh_device.py behind
one real sshd on the loopback (each fetch a full SSH login, paging off, the
configuration), fetched by service/netconfig.fetch_all, PARALLEL at once. Reports wall
time, devices per second and failures.

    .venv/bin/python bench/netconfig_bench.py            # --devices 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ssh_device import running_device  # noqa: E402

from medark.config.netconfig import Device, NetconfigConf  # noqa: E402
from medark.errors import MedarkError  # noqa: E402
from medark.service.netconfig import PARALLEL, fetch_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_device(Path(tmp), "huawei") as dev:
        device = Device(address="127.0.0.1", port=dev.port, profile="huawei",
                        username=dev.user, key_file=str(dev.client_key))
        names = [f"sw{n:03d}" for n in range(args.devices)]
        conf = NetconfigConf(repository="local", known_hosts=str(dev.known_hosts),
                             devices=dict.fromkeys(names, device))
        started, cpu = time.monotonic(), time.process_time()
        fetched = fetch_all(conf, names)
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
    failed = {n: str(r) for n, r in fetched.items() if isinstance(r, MedarkError)}
    print(json.dumps({"devices": args.devices, "parallel": PARALLEL,
                      "wall_seconds": round(wall, 1),
                      "devices_per_second": round(args.devices / wall, 1),
                      "client_cpu_seconds": round(cpu, 1),
                      "failed": len(failed), "first_failure": next(iter(failed.values()), None)},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
