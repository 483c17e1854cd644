"""edge.walks.tracker.BoxTracker: identity across frames by position, size and depth."""

from __future__ import annotations

from edge.types import Person
from edge.walks.tracker import BoxTracker, TrackerConfig


def person(x: float, y: float = 100, h: int = 200, depth: float | None = None, border=False):
    return Person((int(x), int(y), h // 3, h), h * h // 3, border, depth)


def test_a_walking_person_keeps_one_id():
    tracker = BoxTracker()
    ids = {tracker.update([person(50 + 6 * k)])[0] for k in range(60)}
    assert ids == {1}


def test_someone_entering_at_the_other_edge_is_a_new_person():
    tracker = BoxTracker()
    for k in range(20):
        (first,) = tracker.update([person(400 + 8 * k, border=k > 15)])
    # the first leaves at the right edge, the next enters at the left within the same frames
    (second,) = tracker.update([person(0, border=True)])
    assert first == 1 and second == 2
    assert tracker.update([person(6)]) == [2]


def test_two_people_in_view_keep_their_ids_whichever_is_listed_first():
    tracker = BoxTracker()
    assert tracker.update([person(100), person(400, h=120)]) == [1, 2]
    for k in range(1, 30):
        a, b = person(100 + 4 * k), person(400 - 3 * k, h=120)
        order = [a, b] if k % 2 else [b, a]
        ids = tracker.update(order)
        assert ids == ([1, 2] if k % 2 else [2, 1])


def test_a_depth_jump_is_another_person_even_at_the_same_place():
    """A queue toward the camera: the next child far behind shows up where the first was."""
    tracker = BoxTracker()
    for k in range(10):
        tracker.update([person(300, depth=2000 - 40 * k)])
    assert tracker.update([person(302, depth=5200)]) == [2]


def test_a_sudden_change_of_size_is_another_person_but_not_at_the_border():
    tracker = BoxTracker()
    tracker.update([person(300, h=300)])
    assert tracker.update([person(300, h=145)]) == [2]
    cut = BoxTracker()
    cut.update([person(300, h=300, border=True)])
    # more than halved, but cut by the image border (the box's top stays where it was)
    assert cut.update([person(300, h=145, border=True)]) == [1]


def test_a_person_unseen_for_a_few_frames_comes_back_but_not_after_max_missed():
    tracker = BoxTracker(TrackerConfig(max_missed=5))
    for k in range(10):
        tracker.update([person(100 + 5 * k)])
    for _ in range(4):
        tracker.update([])
    assert tracker.update([person(100 + 5 * 14)]) == [1]  # where the walk would have taken it
    for _ in range(6):
        tracker.update([])
    assert tracker.live_ids == set()
    assert tracker.update([person(100 + 5 * 21)]) == [2]


def test_rename_gives_a_live_track_a_new_id():
    tracker = BoxTracker()
    tracker.update([person(100)])
    assert tracker.rename(1) == 2
    assert tracker.update([person(104)]) == [2]
    assert tracker.rename(9) == 9  # not live: nothing to rename


def test_a_far_child_near_where_a_close_one_left_is_another_person():
    """The smaller box sets the scale: 150 px is half a close child's height but nearly
    two far children's (the colour path has no depth to tell them apart)."""
    tracker = BoxTracker()
    tracker.update([person(20, y=100, h=300, border=True)])
    assert tracker.update([person(170, y=210, h=85)]) == [2]
