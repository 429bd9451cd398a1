"""Make a class subset of Caltech101 as symlinks, in the archive's layout, for CPU-scale runs.

    python scripts/caltech101_subset.py --images /data/caltech101/101_ObjectCategories \
        --out /data/caltech10 --classes 10 --per-class 80

Takes the `--classes` largest object classes (`Faces` and `BACKGROUND_Google` left out, as
N-Caltech101 has them not), ties by name, and the first `--per-class` pictures of each by name;
writes `<out>/101_ObjectCategories/<class>/<picture>` links to the originals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SKIP = ("Faces", "BACKGROUND_Google")
SUFFIXES = (".jpg", ".jpeg", ".png")


def pictures(folder: Path) -> list[Path]:
    """The pictures of one class folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def subset(images: Path, out: Path, classes: int, per_class: int) -> dict[str, int]:
    """Link the subset under `out/101_ObjectCategories`; returns class -> pictures linked."""
    folders = [d for d in images.iterdir() if d.is_dir() and d.name not in SKIP]
    folders.sort(key=lambda d: (-len(pictures(d)), d.name))
    made: dict[str, int] = {}
    for d in folders[:classes]:
        dst = out / "101_ObjectCategories" / d.name
        dst.mkdir(parents=True, exist_ok=True)
        for p in pictures(d)[:per_class]:
            link = dst / p.name
            if not link.exists():
                link.symlink_to(p.resolve())
        made[d.name] = len(pictures(dst))
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, required=True, help="Caltech101 101_ObjectCategories")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=80)
    a = ap.parse_args(argv)
    if not a.images.is_dir():
        print(f"--images {a.images}: not a folder", file=sys.stderr)
        return 2
    made = subset(a.images, a.out, a.classes, a.per_class)
    print(f"{sum(made.values())} pictures of {len(made)} classes: "
          + ", ".join(f"{k} {v}" for k, v in made.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
