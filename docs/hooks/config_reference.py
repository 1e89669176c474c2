"""MkDocs hook: the configuration reference, generated from configs/ and selfsup.schema at build time.

docs/configuration.md holds the marker below; each build replaces it with
:func:`selfsup.tools.config_reference.markdown`, so the page lists every key the configs have
today. A key without a description raises :class:`~selfsup.tools.config_reference.MissingDescription`
and the build fails. BENCHMARKS.md (at the repository root, beside the code it measures) is added
to the site as benchmarks.md, its links into docs/ made relative to the site.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # this checkout's selfsup, whatever the environment has installed
    sys.path.insert(0, str(ROOT))

from mkdocs.structure.files import File, Files  # noqa: E402

from selfsup.tools.config_reference import markdown  # noqa: E402

MARKER = "<!-- config-reference -->"
PAGE = "configuration.md"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "benchmarks.md", abs_src_path=str(ROOT / "BENCHMARKS.md")))
    return files


def on_page_markdown(text: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == "benchmarks.md":
        return text.replace("](docs/", "](")
    if page.file.src_uri != PAGE:
        return text
    if MARKER not in text:
        raise ValueError(f"docs/{PAGE} has lost its marker {MARKER}: the reference would not be generated")
    return text.replace(MARKER, markdown())
