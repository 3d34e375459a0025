"""The checkers of Part VI's chapters 3 and 4 accept the right answer and reject plausible wrong ones.

Kept apart from tests/test_exercises.py so that the chapters of Part VI can be written in
parallel; each checker gets the correct answer and at least two classic slips.
"""

from __future__ import annotations

import math

import pytest

from genimg_lib.exercises import CORRECT, NOT_ANSWERED, WRONG, checker_keys, grade


def test_the_chapters_have_their_checkers():
    assert checker_keys("practice_03_troubleshooting") == [f"practice_03_troubleshooting.{i}" for i in (1, 2, 3, 4)]
    assert checker_keys("practice_04_outlook") == [f"practice_04_outlook.{i}" for i in (1, 2, 3)]


def _short_chain_kl() -> float:
    abar = 1.0
    for i in range(10):
        abar *= 1 - (1e-4 + i * (0.2 - 1e-4) / 9)
    return 0.5 * (abar * 4 + 2 * (1 - abar) - 2 - 2 * math.log(1 - abar))


@pytest.mark.parametrize(
    "key, right, wrongs",
    [
        # reference max(1, 0.4) = 1, so 1e4; slips: 0.4 x 1e4, the step-1 value itself, 1e4 x 30 (another curve)
        ("practice_03_troubleshooting.1", 1e4, [4000.0, 0.4, 3e5]),
        # SSE/784 + KL = (SSE + 784 KL) / 784: 2 sigma^2 = 784; slips: sqrt(784) = 28, 392, 784, 1/28
        ("practice_03_troubleshooting.2", math.sqrt(392), [28.0, 392.0, 784.0, 1 / 28]),
        # lr g / (g + eps); slips: SGD's lr g, lr itself (eps ignored), lr g / eps
        ("practice_03_troubleshooting.3", 2e-4 * 1e-7 / (1e-7 + 1e-8), [2e-11, 2e-4, 2e-3]),
        # 500 x 413,696 / 1,331,200 = 155; slips: equal steps (500), 500 / 8 (layers), 500 / 2
        ("practice_03_troubleshooting.4", 155, [500, 62, 250]),
        # (e^0.2 - 1) / 2; slips: 1 (simple loss), 0.1 (first order), T lambda, sigma^2 = beta_t (0.0997)
        ("practice_04_outlook.1", (math.exp(0.2) - 1) / 2, [1.0, 0.1, 100 * (math.exp(0.2) - 1) / 2, 0.0997]),
        # slips: 0 (the chain ends in noise), ||x0||^2 / 2 = 2, the mean part only
        ("practice_04_outlook.2", _short_chain_kl(), [0.0, 2.0, 0.68]),
        # 32 (psi^2 - 1 - ln psi^2); slips: 0, 32 (1 - psi^2), the reverse KL 32 (1/psi^2 - 1 + ln psi^2)
        ("practice_04_outlook.3", 32 * (0.49 - 1 - math.log(0.49)),
         [0.0, 32 * 0.51, 32 * (1 / 0.49 - 1 + math.log(0.49))]),
    ],
)
def test_checkers_accept_the_answer_and_reject_slips(key, right, wrongs):
    assert grade(key, right)[0] == CORRECT, grade(key, right)
    for wrong in wrongs:
        assert grade(key, wrong)[0] == WRONG, (key, wrong)
    assert grade(key, "not a number")[0] == WRONG
    assert grade(key, ...)[0] == NOT_ANSWERED
