"""Splits, k-core, modes and bad-row accounting on hand-built arrays."""
from __future__ import annotations

import numpy as np
import pytest

from mrs.errors import MrsError
from mrs.prep.common import BadRows, kcore, time_mode
from mrs.prep.splits import split_leave_last_out, split_mmrec, split_temporal


@pytest.mark.parametrize("n,expected", [
    (5, (3, 1, 1)), (9, (7, 1, 1)),            # n < 10: n-2 train, 1 valid, 1 test
    (10, (8, 1, 1)), (19, (16, 1, 2)),          # vt = int(0.2 n) = 3 -> valid 1, test 2
    (25, (20, 2, 3)), (92, (74, 9, 9)), (2, (2, 0, 0)),
])
def test_mmrec_split_counts_follow_mmrec_rule(n, expected):
    user = np.zeros(n, dtype=np.int64)
    label = split_mmrec(user, seed=0)
    assert tuple(np.bincount(label, minlength=3)) == expected


def test_mmrec_split_is_seeded_and_random_within_user():
    user = np.repeat(np.arange(50), 20)
    a, b, c = split_mmrec(user, 1), split_mmrec(user, 1), split_mmrec(user, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # test items are not always the last positions (it is a random split, not leave-last-out)
    pos = np.tile(np.arange(20), 50)
    assert len(np.unique(pos[a == 2])) > 5


def test_leave_last_out_uses_order_not_row_position():
    user = np.array([0, 0, 0, 0, 1, 1, 2])
    order = np.array([3, 0, 2, 1, 0, 1, 0])
    assert split_leave_last_out(user, order).tolist() == [2, 0, 1, 0, 0, 0, 0]


def test_temporal_split_days():
    day = 86400
    ts = np.array([0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]) * day + 3600
    # last day 20: test = days 14..20 (7 days), valid = days 7..13
    assert split_temporal(ts, 7, 7).tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]


def test_kcore_iterates_until_stable():
    # item 2 has one row; dropping it makes user 1 fall to 1 row, which then drops item 1 to 1 row.
    user = np.array([0, 0, 1, 1, 2, 2])
    item = np.array([0, 1, 1, 2, 0, 3])
    keep = kcore(user, item, 2)
    assert keep.tolist() == [False, False, False, False, False, False]
    user = np.array([0, 0, 1, 1, 2])
    item = np.array([0, 1, 0, 1, 1])
    assert kcore(user, item, 2).tolist() == [True, True, True, True, False]


def test_time_modes():
    # 2024-01-06 is a Saturday; 2024-07-01 a Monday
    ts = np.array([1704499200, 1719792000])
    ww, spec = time_mode(ts, "weekday_weekend")
    assert ww.tolist() == [1, 0] and spec["cardinality"] == 2
    m, spec = time_mode(ts, "month")
    assert m.tolist() == [0, 6] and spec["labels"][6] == "Jul"
    s, _ = time_mode(ts, "season")
    assert s.tolist() == [0, 2]
    w, spec = time_mode(ts, "week")
    assert w.tolist() == [0, 26] and spec["cardinality"] == 53
    with pytest.raises(MrsError, match="unknown time mode"):
        time_mode(ts, "fortnight")


def test_bad_rows_threshold_names_file():
    bad = BadRows("x.csv", max_frac=0.1)
    bad.total = 100
    bad.add(3, "unparseable date")
    bad.check()  # 1% < 10%: a warning only
    bad.add_lines(np.arange(4, 20), "empty id")
    with pytest.raises(MrsError, match=r"x\.csv: 17 of 100 rows malformed.*x\.csv:3 \(unparseable date\)"):
        bad.check()


def test_compact_codes_and_categorical_mode():
    from mrs.prep.common import categorical_mode, compact_codes
    codes, used = compact_codes(np.array([5, 2, 5, 9]), 10)
    assert codes.tolist() == [1, 0, 1, 2] and used.tolist() == [2, 5, 9]
    col, spec = categorical_mode(np.array([2, 1, 2, 2], dtype=np.int8), prefix="ch")
    assert col.tolist() == [1, 0, 1, 1] and spec == {"cardinality": 2, "labels": ["ch1", "ch2"]}
    col, spec = categorical_mode(np.array(["b", "a", "b"]))
    assert col.tolist() == [1, 0, 1] and spec["labels"] == ["a", "b"]
