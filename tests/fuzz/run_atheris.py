"""Coverage-guided fuzzing of one target with atheris (libFuzzer): `make fuzz`.

    python tests/fuzz/run_atheris.py TARGET [libFuzzer arguments: corpus dirs, -flags]

Medark's modules are instrumented for coverage; the contract is fuzz_targets.run_one's, so
anything but a MedarkError (and a hang, a large allocation, a write outside the target)
ends the run with a crasher file. Give a crasher file instead of a directory to replay it.
atheris is installed by `make fuzz` on demand; it is not a dependency of Medark.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["medark"]):
    import fuzz_targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in fuzz_targets.TARGETS:
        raise SystemExit(f"usage: run_atheris.py TARGET [libFuzzer args]; targets: "
                         f"{', '.join(sorted(fuzz_targets.TARGETS))}")
    name = sys.argv[1]

    def one_input(data: bytes) -> None:
        fuzz_targets.run_one(name, data)

    # -timeout=0: libFuzzer's own alarm would fight the harness's per-input alarm
    atheris.Setup([sys.argv[0], "-timeout=0", *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
