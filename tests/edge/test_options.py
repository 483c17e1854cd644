"""edge.options: keyword options of any type read as int(), float() and text would read them."""

import numpy as np
import pytest

from edge.options import float_of, int_of, text_or_none
from edge.sources.sim import SimSource


def test_int_of_takes_what_int_takes():
    assert int_of("12") == 12
    assert int_of(7) == 7
    assert int_of(True) == 1
    assert int_of(np.int64(3)) == 3
    assert int_of(2.9) == 2
    with pytest.raises(ValueError):
        int_of("twelve")
    with pytest.raises(TypeError):
        int_of(None)
    with pytest.raises(TypeError):
        int_of([1])


def test_float_of_takes_what_float_takes():
    assert float_of("0.5") == 0.5
    assert float_of(2) == 2.0
    assert float_of(np.float32(0.25)) == 0.25
    with pytest.raises(ValueError):
        float_of("half")
    with pytest.raises(TypeError):
        float_of(object())


def test_text_or_none():
    assert text_or_none(None) is None
    assert text_or_none("pycuda") == "pycuda"
    assert text_or_none(3) == "3"


def test_sim_source_refuses_a_camera_that_is_not_a_camera_config():
    from edge.errors import SourceError

    with pytest.raises(SourceError, match="gaitsim.CameraConfig"):
        SimSource("sim://?walks=1", camera={"height": 1.2})
