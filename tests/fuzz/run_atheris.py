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
        fuzz_targets.run_one(name, data, deadline=False)

    # atheris's own per-input timeout (it owns SIGALRM), as long as the harness's
    seconds = int(fuzz_targets.SLOW_SECONDS.get(name, fuzz_targets.SECONDS))
    atheris.Setup([sys.argv[0], f"-timeout={seconds}", *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
