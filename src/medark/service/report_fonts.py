"""The Chinese font the reports are drawn with, found before any work. Without one,
WeasyPrint and matplotlib draw every Chinese character as a box and still succeed, so
`medark report` refuses instead (NotInstalled). fontconfig is asked, as Pango (WeasyPrint)
itself asks it; matplotlib is then given the same file (report_render.py), because its
own font cache may predate the fonts' installation."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medark.errors import NotInstalled

if TYPE_CHECKING:
    from medark.service.report_data import PeriodReport

PREFERRED = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Noto Serif CJK SC")
"""Simplified-Chinese faces first; any other face fontconfig says covers Chinese after."""

MISSING = ("no Chinese (CJK) font is installed: the report's Chinese would print as "
           "boxes; install fonts-noto-cjk (Debian) or another font covering Chinese")


@dataclass(frozen=True)
class CjkFont:
    family: str
    path: Path


RENDERER_MODULES = ("matplotlib", "weasyprint")
"""The `report` extra (pyproject.toml): heavy, and not needed on a database host."""


def load_renderer() -> Callable[[PeriodReport, Path, CjkFont, str], tuple[Path, Path]]:
    """write_report, imported only when reporting (matplotlib and WeasyPrint take most of
    a second); NotInstalled, before any work, when the `report` extra is missing. (For
    `medark report` and the management server's reports alike.)"""
    for module in RENDERER_MODULES:  # write_report imports WeasyPrint late: check first
        try:
            with warnings.catch_warnings():  # no fonts at all: cjk_font() says it in one line
                warnings.filterwarnings("ignore", "No fonts configured in FontConfig")
                importlib.import_module(module)
        except ImportError as exc:  # the extra, or a package it needs, is missing
            raise NotInstalled(f"the report renderer is not installed ({exc.name or module} "
                               "is missing): pip install 'medark[report]'") from None
        except OSError:  # WeasyPrint loads Pango when imported
            raise NotInstalled("the report renderer cannot load Pango: install "
                               "libpango-1.0-0 and libpangoft2-1.0-0 (Debian)") from None
    from medark.service.report_render import write_report

    return write_report


def cjk_font() -> CjkFont:
    """The best installed font covering Chinese, else NotInstalled."""
    found = _fontconfig_fonts() if shutil.which("fc-list") else _matplotlib_fonts()
    if not found:
        raise NotInstalled(MISSING)
    for family in PREFERRED:
        for font in found:
            if font.family == family:
                return font
    return sorted(found, key=lambda f: (f.family, str(f.path)))[0]


def _fontconfig_fonts() -> list[CjkFont]:
    """Regular faces fontconfig knows that cover Simplified Chinese."""
    try:
        listed = subprocess.run(
            ["fc-list", ":lang=zh-cn", "--format", "%{family[0]}\t%{style[0]}\t%{file}\n"],
            capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    fonts = []
    for line in listed.splitlines():
        family, _, rest = line.partition("\t")
        style, _, file = rest.partition("\t")
        if family and file and style in ("Regular", "Book", "Medium", "Normal", ""):
            fonts.append(CjkFont(family, Path(file)))
    return fonts


def _matplotlib_fonts() -> list[CjkFont]:
    """Without fontconfig's tools: the system's font files that hold 中 (slower)."""
    from matplotlib import font_manager, ft2font

    fonts = []
    for file in font_manager.findSystemFonts():
        try:
            face = ft2font.FT2Font(file)
        except (OSError, RuntimeError, ValueError):
            continue
        if face.get_char_index(ord("中")):
            fonts.append(CjkFont(face.family_name, Path(file)))
    return fonts
