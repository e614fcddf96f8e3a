"""The README's settings table lists every setting the services read."""

import pytest

from reelforge.stack import SERVICE_MODULES, env_name, service_module
from support.paths import ROOT

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", list(SERVICE_MODULES))
def test_every_setting_is_in_the_readme(name: str) -> None:
    fields = service_module(name).Settings.model_fields
    missing = [env_name(f, info) for f, info in fields.items() if f"`{env_name(f, info)}`" not in README]
    assert not missing


def test_no_flat_name_means_two_things() -> None:
    """A variable read by two services means the same to both (a common setting), else it names its service."""
    owners: dict[str, set[str]] = {}
    for name in SERVICE_MODULES:
        for f, info in service_module(name).Settings.model_fields.items():
            owners.setdefault(env_name(f, info), set()).add(name)
    for flat in ("REELFORGE_PORT", "REELFORGE_PRESET", "REELFORGE_STEPS", "REELFORGE_HOST"):
        assert flat not in owners


def test_readme_starts_with_the_two_commands() -> None:
    head = README[:400]
    assert "make demo" in head
    assert "make test" in head


def test_readme_table_is_the_generated_one() -> None:
    from reelforge.stack import settings_table

    assert settings_table() in README, "run `reelforge settings` and paste the table into README.md"
