"""The README's settings table lists every setting the services read."""

from pathlib import Path

import pytest

from reelforge.stack import SERVICE_MODULES, service_module

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", list(SERVICE_MODULES))
def test_every_setting_is_in_the_readme(name: str) -> None:
    fields = service_module(name).Settings.model_fields
    missing = [f"REELFORGE_{f.upper()}" for f in fields if f"`REELFORGE_{f.upper()}`" not in README]
    assert not missing


def test_readme_starts_with_the_two_commands() -> None:
    head = README[:400]
    assert "make demo" in head and "make test" in head


def test_readme_table_is_the_generated_one() -> None:
    from reelforge.stack import settings_table

    assert settings_table() in README, "run `reelforge settings` and paste the table into README.md"
