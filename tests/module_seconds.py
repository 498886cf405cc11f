"""Write tests/module_seconds.json from a JUnit XML report: each test module's seconds
(setup, call and teardown of all its tests), for tests/longest_first.py.

    python tests/module_seconds.py REPORT.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def main(report: str) -> int:
    seconds: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        seconds[module] += float(case.get("time") or 0)
    out = Path(__file__).with_name("module_seconds.json")
    out.write_text(json.dumps({m: round(s, 1) for m, s in seconds.most_common()}, indent=0)
                   + "\n")
    print(f"{out}: {len(seconds)} modules, {sum(seconds.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
