"""``rpacs demo`` finds nothing identifying, and running it twice changes nothing."""

from __future__ import annotations

from pathlib import Path

from rpacs.demo import run_demo
from rpacs.installation import Installation
from rpacs.settings import Settings


def test_demo_is_clean_and_idempotent(tmp_path: Path):
    inst = Installation.open(Settings(home=tmp_path / "home"))
    first = run_demo(inst)
    assert first.clean, first.render()
    assert first.stored == first.files == 36
    second = run_demo(inst)
    assert second.clean and second.stored == 0 and second.present == 36
    assert not Path(first.input_folder).exists()
    assert "nothing identifying found" in second.render()
    inst.close()
