"""The exhibits' shared base: how a result prints."""

from optimlab.exhibits.base import Demo, steps_text


class _Tiny(Demo):
    name = "tiny"
    title = "A tiny exhibit"

    def table(self) -> str:
        return "a | b\n1 | 2"


def test_a_result_prints_its_title_and_table():
    demo = _Tiny()
    assert str(demo) == "A tiny exhibit\na | b\n1 | 2"
    assert repr(demo) == "<_Tiny 'tiny'>\nA tiny exhibit\na | b\n1 | 2"


def test_steps_text():
    assert steps_text(None) == "never"
    assert steps_text(0) == "0" and steps_text(17) == "17"
