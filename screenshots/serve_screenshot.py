"""serve.png: `rlhf-top serve` as a browser shows it, for the README.

    python screenshots/serve_screenshot.py [RUNS_DIR] [OUT_DIR]

Needs the serve extra, playwright and the system's chromium (as tests/test_serve.py does, with the same
helpers). RUNS_DIR defaults to sample_runs/, OUT_DIR to this folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from browser import browser_page, served  # noqa: E402 - the serve test's helpers

TOAST_SECONDS = 9  # the start-up notification about failed runs has gone by then


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", nargs="?", type=Path, default=HERE.parent / "sample_runs")
    parser.add_argument("out_dir", nargs="?", type=Path, default=HERE)
    args = parser.parse_args()
    names = [p.name for p in args.runs_dir.iterdir() if p.is_dir()]
    with tempfile.TemporaryDirectory() as scratch:
        with served([args.runs_dir], Path(scratch) / "serve.log") as url, browser_page(url, (1280, 720)) as page:
            page.wait_for_screen(lambda text: all(name[:20] in text for name in names))  # long names are cut
            page.page.wait_for_timeout(TOAST_SECONDS * 1000)
            target = args.out_dir / "serve.png"
            page.page.screenshot(path=str(target))
    print(target)


if __name__ == "__main__":
    main()
