"""The `dicom` items of a restore request (config/agent_conf.py dicom_items_problem,
checked by the server and again by the agent) and the `medark dicom restore` runs the
agent makes of them (agent/dicom_job.py steps_of)."""

from __future__ import annotations

from typing import Any

import pytest

from medark.agent.dicom_job import steps_of
from medark.config.agent_conf import MAX_PATHS, dicom_items_problem

STUDY = "1.2.826.0.1.3680043.8.498.7.1"


def test_studies_and_series_make_one_run_each() -> None:
    items = [{"study": STUDY, "series": [f"{STUDY}.1", f"{STUDY}.2"]},
             {"study": "1.2.3"}, {"study": "1.2.4", "series": []}]
    assert dicom_items_problem(items) is None
    assert steps_of(items) == [(STUDY, f"{STUDY}.1"), (STUDY, f"{STUDY}.2"),
                               ("1.2.3", None), ("1.2.4", None)]


@pytest.mark.parametrize(("items", "said"), [
    ([], "a list of studies"),
    ("1.2.3", "a list of studies"),
    ([{"study": "1.2.3", "path": "/etc"}], "{study, series?}"),
    ([{"study": "1.2.x"}], "not a DICOM UID"),
    ([{"study": "1." * 40 + "1"}], "not a DICOM UID"),
    ([{"study": "1.2", "series": "1.2.1"}], "series is a list"),
    ([{"study": "1.2", "series": ["--target=/"]}], "not a DICOM UID"),
    ([{"study": "1.2", "series": [f"1.2.{n}" for n in range(MAX_PATHS)]},
      {"study": "1.3"}], f"at most {MAX_PATHS}"),
])
def test_malformed_items_are_refused(items: Any, said: str) -> None:
    problem = dicom_items_problem(items)
    assert problem is not None and said in problem, problem
