"""`medark report` and the Chinese font, through the real command: no font covering
Chinese is one line and exit 18 before any work (the PDF would show boxes); a matplotlib
font cache written before the fonts were installed still gives charts in Chinese, with
no warning about missing glyphs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSWORD, Cli
from test_report_cli import CONFIG

needs_fontconfig = pytest.mark.skipif(shutil.which("fc-list") is None,
                                      reason="fontconfig's tools are not installed")


def _configured(cli: Cli, tmp_path: Path) -> Path:
    data = tmp_path / "pacs"
    data.mkdir()
    (data / "study.dcm").write_bytes(os.urandom(50_000))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", repo=cli.repo, data=data,
                                    password_file=password_file), encoding="utf-8")
    cli("run", "pacs", "--config", config, password=None)
    return config


@needs_fontconfig
def test_no_chinese_font_is_one_line_and_exit_18(cli: Cli, tmp_path: Path) -> None:
    config = _configured(cli, tmp_path)
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    fonts_conf = tmp_path / "fonts.conf"  # fontconfig (as Pango sees it) with no font
    fonts_conf.write_text(f'<?xml version="1.0"?><fontconfig><dir>{empty}</dir>'
                          f'<cachedir>{tmp_path / "fc-cache"}</cachedir></fontconfig>')
    bare = Cli(cli.repo, dict(cli.env, FONTCONFIG_FILE=str(fonts_conf)))
    result = bare("report", "monthly", "--config", config, "--output", tmp_path / "out",
                  password=None, check=False)
    assert result.returncode == 18, result.stderr
    assert result.stderr == ("medark: no Chinese (CJK) font is installed: the report's "
                             "Chinese would print as boxes; install fonts-noto-cjk (Debian) "
                             "or another font covering Chinese\n")
    assert not (tmp_path / "out").exists()


@needs_fontconfig
def test_charts_draw_chinese_despite_a_stale_matplotlib_cache(cli: Cli,
                                                              tmp_path: Path) -> None:
    config = _configured(cli, tmp_path)
    mpl = tmp_path / "mpl"  # matplotlib's font list as written before fonts-noto-cjk
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True,
                   env=dict(os.environ, MPLCONFIGDIR=str(mpl)), capture_output=True)
    (cache,) = mpl.glob("fontlist-*.json")
    doc = json.loads(cache.read_text())
    before = len(doc["ttflist"])
    doc["ttflist"] = [f for f in doc["ttflist"] if "CJK" not in f["fname"]]
    assert len(doc["ttflist"]) < before  # the fonts are installed, the cache forgot them
    cache.write_text(json.dumps(doc))
    stale = Cli(cli.repo, dict(cli.env, MPLCONFIGDIR=str(mpl)))
    result = stale("--json", "report", "monthly", "--config", config, "--output",
                   tmp_path / "out", password=None)
    assert "missing from font" not in result.stderr and "findfont" not in result.stderr, \
        result.stderr
    assert result.stderr == ""
    fonts = subprocess.run(["pdffonts", result.json()["pdf"]], capture_output=True,
                           text=True, check=True).stdout
    assert "CJK" in fonts and "DejaVu" not in fonts, fonts
