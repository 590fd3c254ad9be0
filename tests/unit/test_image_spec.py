"""[images.NAME] in reproflake.toml: what parses, and the errors for what does not."""

from __future__ import annotations

import pytest

from reproflake import spec
from reproflake.errors import SpecError
from tests.unit.test_spec import PATH, VALID, line_of

IMAGE = """
[images.serve]
step = "prepare"
entrypoint = ["python3", "-c", "x", "x"]
cmd = []
env = { MODE = "serve", PORT = 8080 }
workdir = "/srv"
labels = { "org.opencontainers.image.licenses" = "MIT" }
"""


def error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec.parse(text, PATH)
    return info.value


def test_an_image_parses_with_defaults_filled_in() -> None:
    image = spec.parse(VALID + IMAGE, PATH).images["serve"]
    assert image.step == "prepare"
    assert image.entrypoint == ("python3", "-c", "x", "x")  # repeats are fine in a command
    assert dict(image.env) == {"MODE": "serve", "PORT": "8080"}
    assert image.workdir == "/srv"
    assert image.outputs_path == "/srv/results/prepare"
    assert image.workspace is True
    assert spec.parse(VALID, PATH).images == {}


@pytest.mark.parametrize(
    ("old", "new", "needle", "problem"),
    [
        ('step = "prepare"', 'step = "prepar"', 'step = "prepar"', "did you mean 'prepare'"),
        ('workdir = "/srv"', 'workdir = "srv"', "workdir", "not a plain absolute path"),
        ('workdir = "/srv"', 'workdir = "/a/../b"', "workdir", "not a plain absolute path"),
        ("cmd = []", 'cmd = "run"', "cmd = ", "expected a list of strings"),
        (
            '"org.opencontainers.image.licenses" = "MIT"',
            '"org.opencontainers.image.revision" = "x"',
            "labels",
            "written by reproflake",
        ),
        ("cmd = []", "cmd = []\nports = 1", "ports", "unknown key 'ports'"),
        ("PORT = 8080", "PORT = [1]", "PORT = [1]", "expected a string or number"),
    ],
)
def test_image_errors_name_the_line_the_key_and_the_fix(
    old: str, new: str, needle: str, problem: str
) -> None:
    text = VALID + IMAGE.replace(old, new)
    exc = error(text)
    assert f"{PATH}:{line_of(text, needle)}:" in exc.message
    assert problem in str(exc)


def test_reproflake_labels_are_reserved() -> None:
    exc = error(
        VALID + IMAGE.replace("licenses", "x").replace("org.opencontainers.image", "dev.reproflake")
    )
    assert "dev.reproflake.x is written by reproflake" in exc.message
