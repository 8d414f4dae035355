"""Loading rule and policy data files: TOML, validated by a pydantic model, defaults shipped.

Every rule set (classifier, grader, router, SLA policy, ...) is a data file. The package ships
defaults under `ticketstream/data/`; an operator points a setting or a command-line option at a
replacement. A file that does not validate is refused with the exact problem, so a typo in a
policy stops a deployment instead of silently changing behaviour.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

DATA_DIR = Path(__file__).parent / "data"

M = TypeVar("M", bound=BaseModel)


class PolicyError(ValueError):
    """A rule or policy file is missing or invalid; the message names the file and the problem."""


def load_model(model: type[M], path: str | Path | None, default_name: str) -> M:
    """Read `path` (or the shipped default `default_name`) into `model`, or raise PolicyError."""
    source = Path(path) if path else DATA_DIR / default_name
    try:
        with source.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(f"{source}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:10]
        )
        raise PolicyError(f"{source}: {problems}") from None
