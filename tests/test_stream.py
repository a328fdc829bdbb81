"""The refill loop of the compiled batch executors (``marquardt._core.stream``), on a fake
round: which problem gets which slot, when it leaves, and when a round may end early."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt._core import stream as st
from marquardt._core.records import RUNNING


class FakeRounds:
    """A compiled round stand-in: problem p needs ``need[p]`` iterations; a round runs
    ``ROUND_ITERATIONS`` iterations, or stops once at most ``min_running`` slots still run
    (after one iteration), as ``resume_loop`` does."""

    def __init__(self, need):
        self.need = np.asarray(need)
        self.calls = []

    def __call__(self, state, fresh, rows, min_running):
        left = state.copy()
        left[fresh] = self.need[rows[fresh]]
        self.calls.append((rows.copy(), fresh.copy(), min_running))
        for it in range(st.ROUND_ITERATIONS):
            if it > 0 and (left > 0).sum() <= min_running:
                break
            left = np.maximum(left - 1, 0) * (left > 0)
        status = np.where(left > 0, RUNNING, 1)
        return left, status


def test_finished_problems_leave_and_waiting_ones_take_their_slots():
    need = [3, 20, 2, 2, 9, 1, 1]  # problem 1 is slow: it holds one slot throughout
    rounds = FakeRounds(need)
    stored = []
    st.stream(rounds, np.zeros(3, int), np.arange(7), 3,
              lambda problems, state, at: stored.append(list(problems)))
    # round 1: problems 0, 1, 2 in slots 0, 1, 2; 0 and 2 end (3 and 2 iterations ≤ 8)
    rows, fresh, floor = rounds.calls[0]
    assert rows.tolist() == [0, 1, 2] and fresh.all() and floor == 0  # 3 // 4 == 0
    assert stored[0] == [0, 2]
    # round 2: the freed slots 0 and 2 take problems 3 and 4; slot 1 keeps problem 1
    rows, fresh, _ = rounds.calls[1]
    assert rows.tolist() == [3, 1, 4] and fresh.tolist() == [True, False, True]
    assert stored[1] == [3]  # 4 needs 9 iterations, 1 needs 20 (8 done so far)
    rows, fresh, _ = rounds.calls[2]
    assert rows.tolist() == [5, 1, 4] and fresh.tolist() == [True, False, False]
    assert sorted(sum(stored, [])) == list(range(7))  # every problem stored exactly once
    assert len(rounds.calls) == 4  # 1 ends after 20 iterations: in the third round of its slot


def test_a_round_ends_early_only_while_problems_wait():
    rounds = FakeRounds([20] * 4 + [1] * 12)
    st.stream(rounds, np.zeros(4, int), np.arange(16), 4, lambda *a: None)
    floors = [c[2] for c in rounds.calls]
    assert floors[0] == int(st.REFILL_FRACTION * 4) == 1  # problems wait: may end early
    assert floors[-1] == 0  # nothing waits: the last round runs until all are done


@pytest.mark.parametrize("k, slots, streams", [(10, 8, 1), (16, 8, 2), (1000, 8, 2)])
def test_streams_split_the_problems_without_loss(monkeypatch, k, slots, streams):
    monkeypatch.setattr(st, "workers", lambda: 2)
    parts = []
    st.streams(parts.append, np.arange(k), slots)
    assert len(parts) == streams
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(k))
