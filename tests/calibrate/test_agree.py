"""calibrate.agree: a fact is kept only where every candidate launch file states it alike."""
from calibrate.agree import agree, agree_flags


def test_agree_keeps_only_a_shared_value():
    assert agree([4, 4]) == 4
    assert agree([4, 8]) is None and agree([]) is None


def test_flags_are_agreed_one_by_one():
    a = {"scheduler-recv-interval": "30", "speculative-algorithm": "EAGLE", "tp": "8"}
    b = {"scheduler-recv-interval": "30", "tp": "4"}
    assert agree_flags([a, b]) == "scheduler-recv-interval=30;speculative-algorithm=?;tp=?"
    assert agree_flags([a]) == "scheduler-recv-interval=30;speculative-algorithm=EAGLE;tp=8"
    assert agree_flags([]) is None
