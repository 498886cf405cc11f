"""Which language `report` and `compliance` speak: one resolution for both, so a hospital
sets it once. --lang when given; else the configuration's `[hospital] language`; else a
Chinese locale (LC_ALL, LC_MESSAGES or LANG, the first one set, starting with `zh`);
else the command's own default — Chinese for the reports, English for `compliance`, as
the rest of the CLI."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the plan schema (pydantic): `--help` must not import it
    from medark.config.plans import MedarkConfig

LANGUAGES = ("zh", "en")


def add_lang_option(p: argparse.ArgumentParser, fallback: str) -> None:
    locale = "" if fallback == "zh" else "else zh under a Chinese locale, "
    p.add_argument("--lang", choices=LANGUAGES, default=None,
                   help="language (default: the configuration's [hospital] language, "
                   f"{locale}else {fallback})")


def resolve_language(given: str | None, config: MedarkConfig, fallback: str,
                     environ: Mapping[str, str] = os.environ) -> str:
    if given:
        return given
    if config.hospital.language:
        return config.hospital.language
    return "zh" if locale_is_chinese(environ) else fallback


def locale_is_chinese(environ: Mapping[str, str]) -> bool:
    """The messages locale as POSIX picks it: LC_ALL over LC_MESSAGES over LANG."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return value.lower().startswith("zh")
    return False
