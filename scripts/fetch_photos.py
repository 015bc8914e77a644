"""Fetch the real photographs of Debian's wallpaper packages listed in scripts/photos.tsv and cache downsized
copies: data/photos/{train,eval}/NAME.jpg (long side 1280 px, JPEG quality 95; about 15 MB in all).

``apt-get download`` fetches each package (no install, no root needed for the files), ``dpkg-deb -x`` unpacks
it into a temporary folder. Only the listed photographs are kept; renders and abstracts are left out.
Usage (from the repo root): python scripts/fetch_photos.py [--out data/photos] [--long-side 1280]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

LIST = Path(__file__).with_name("photos.tsv")


def read_list(path: Path = LIST) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, member, split, author, licence = line.split("\t")
            rows.append(dict(package=package, member=member, split=split, author=author, licence=licence))
    return rows


def cached_name(member: str) -> str:
    """A short unique name: the file's stem, or the wallpaper's folder name for KDE's images/WxH.jpg."""
    parts = Path(member).parts
    return (parts[-4] if "contents" in parts else Path(member).stem) + ".jpg"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/photos")
    p.add_argument("--long-side", type=int, default=1280)
    args = p.parse_args()
    rows = read_list()
    out = Path(args.out)
    todo = [r for r in rows if not (out / r["split"] / cached_name(r["member"])).is_file()]
    if not todo:
        print(f"{len(rows)} photographs already in {out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for package in sorted({r["package"] for r in todo}):
            subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True)
            deb = next(Path(tmp).glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        Image.MAX_IMAGE_PIXELS = None  # trusted Debian files of up to 20 megapixels
        for r in todo:
            img = Image.open(Path(tmp) / "x" / r["member"]).convert("RGB")
            img.thumbnail((args.long_side, args.long_side), Image.Resampling.LANCZOS)  # downsized: sharper
            target = out / r["split"] / cached_name(r["member"])
            target.parent.mkdir(parents=True, exist_ok=True)
            img.save(target, quality=95)
    print(f"{len(rows)} photographs in {out}: {sum(r['split'] == 'train' for r in rows)} train, "
          f"{sum(r['split'] == 'eval' for r in rows)} eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
