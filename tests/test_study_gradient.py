"""The bookkeeping of experiments/study_gradient.py: thresholds, chunk times, the table and a figure (no training)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "study_gradient.py"
_spec = importlib.util.spec_from_file_location("study_gradient", _PATH)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)


def test_rel_gap_is_absolute_below_one():
    np.testing.assert_allclose(study.rel_gap([-9.0, -10.0], -10.0), [0.1, 0.0])
    np.testing.assert_allclose(study.rel_gap([1e-3], 1e-20), [1e-3])  # barlow: optimum 0, absolute gap


def test_settle_step_is_where_the_gap_stays_below():
    gaps = [1.0, 1e-3, 1e-1, 1e-3, 1e-5, 1e-7]
    assert study.settle_step(gaps, 1e-2) == 3  # dipped at step 1, but rose again at step 2
    assert study.settle_step(gaps, 1e-6) == 5
    assert study.settle_step(gaps, 1e-8) is None
    assert study.settle_step(gaps, 10.0) == 0


def test_time_at_reads_the_end_of_the_chunk():
    marks = [(10, 0.5), (20, 0.7), (25, 0.8)]
    assert study.time_at(1, marks) == 0.5
    assert study.time_at(10, marks) == 0.5
    assert study.time_at(11, marks) == 0.7
    assert study.time_at(25, marks) == 0.8
    assert study.time_at(26, marks) is None
    assert study.per_step_ms(marks) == pytest.approx(1e3 * 0.3 / 15)
    assert study.per_step_ms(marks[:1]) is None


def _fake_results():
    gap = [1.0, 1e-1, 1e-3, 1e-5, 1e-7]
    run = {"optimiser": "sgd+whiten", "learning_rate": 0.01, "steps_run": 4, "gap": gap, "marks": [[2, 0.2], [4, 0.4]],
           "final_gap": gap[-1], "ms_per_step": 100.0, "norm_ratio": 1.0,
           "reach": {f"{t:g}": {"steps": study.settle_step(gap, t), "seconds": 0.4, "ratio_to_closed": 2.0}
                     for t in study.THRESHOLDS}}
    return {"objectives": {"vicreg": {"objective": "vicreg", "time_closed_s": 0.2,
                                      "runs": {"sgd+whiten": run, "lbfgs+whiten": {"diverged": "nan at step 3"}}}}}


def test_table_and_figure_from_results(tmp_path):
    res = _fake_results()
    text = study.table(res)
    assert "| vicreg | sgd+whiten | 0.20 | 2 / 0.40 | 3 / 0.40 | 4 / 0.40 | 2.0 | 1.0e-07 |" in text
    assert "| vicreg | lbfgs+whiten | 0.20 | diverged |" in text
    paths = study.write_figures(res, tmp_path)
    assert [p.name for p in paths] == ["loss_vicreg.png"] and paths[0].stat().st_size > 0
