"""`download(name, root)`: fetch a dataset from its public URL, verify its MD5, unpack, place.

Placement is atomic: the file goes to `<root>/.tmkt_download/<file>.part`, is checked, unpacked
into a temp folder there (nested archives too), and the wanted folder/file is then moved into
place with one rename. Something already in place is left as it is.
URLs: N-MNIST (Mendeley Data, as tonic uses), MNIST (the torchvision mirror), CIFAR-10 (python
tarball, Toronto), CIFAR10-DVS (figshare, tonic's aedat4 copy), N-Caltech101 (Mendeley Data).
Caltech101 has no public direct URL with a published checksum (Caltech's record page hands out a
zip of tarballs behind a landing page): download it by hand, see `MANUAL`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tmkt.datasets.base import DatasetError


@dataclass(frozen=True)
class Resource:
    """One download: `url` saved as `filename` (MD5 `md5`); `dest` (relative to root) receives
    the file itself (`member=None`) or the folder named `member` found in the unpacked archive."""

    url: str
    filename: str
    md5: str
    dest: str
    member: str | None = None


_MENDELEY_NMNIST = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"

RESOURCES: dict[str, list[Resource]] = {
    "nmnist": [
        Resource(
            _MENDELEY_NMNIST + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
            "train.zip", "20959b8e626244a1b502305a9e6e2031", "N-MNIST/Train", "Train",
        ),
        Resource(
            _MENDELEY_NMNIST + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
            "test.zip", "69ca8762b2fe404d9b9bad1103e97832", "N-MNIST/Test", "Test",
        ),
    ],
    "mnist": [
        Resource(_MNIST + f, f, md5, f"MNIST/raw/{f}")
        for f, md5 in (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        )
    ],
    "cifar10": [
        Resource(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
            "cifar-10-batches-py", "cifar-10-batches-py",
        )
    ],
    "cifar10dvs": [
        Resource(
            "https://figshare.com/ndownloader/files/38023437",
            "CIFAR10DVS.zip", "ce3a4a0682dc0943703bd8f749a7701c", "CIFAR10-DVS", "",
        )
    ],
    "ncaltech101": [
        Resource(
            "https://data.mendeley.com/public-files/datasets/cy6cvx3ryv/files/"
            "36b5c52a-b49d-4853-addb-a836a8883e49/file_downloaded",
            "N-Caltech101-archive.zip", "66201824eabb0239c7ab992480b50ba3",
            "Caltech101", "Caltech101",
        )
    ],
}
# A family name downloads its event part and its static part.
FAMILIES = {
    "nmnist": ("nmnist", "mnist"),
    "cifar10dvs": ("cifar10dvs", "cifar10"),
    "ncaltech101": ("ncaltech101", "caltech101"),
}
MANUAL = {
    "caltech101": (
        "Caltech101 has no public direct URL with a published checksum. Get caltech-101.zip from "
        "https://data.caltech.edu/records/mzrjq-6wc02, unpack 101_ObjectCategories.tar.gz inside "
        "it and place the folder as <static_root>/101_ObjectCategories/<class>/image_XXXX.jpg"
    ),
}


def md5sum(path: Path) -> str:
    """MD5 of a file's bytes."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: Path, md5: str, *, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` (via `dest.part`), verify MD5; a mismatch deletes it and fails."""
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} failed: {e}") from None
    got = md5sum(part)
    if got != md5:
        part.unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch for {url}: MD5 {got}, expected {md5}")
    os.replace(part, dest)
    return dest


def _safe_target(base: Path, name: str) -> Path:
    target = (base / name).resolve()
    if base.resolve() not in (target, *target.parents):
        raise DatasetError(f"archive member {name!r} would land outside {base}")
    return target


def unpack(archive: Path, into: Path) -> None:
    """Unpack a .zip or .tar[.gz|.bz2|.xz] into `into`, refusing members that escape it."""
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                _safe_target(into, name)
            z.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                _safe_target(into, m.name)
                if not (m.isfile() or m.isdir()):
                    raise DatasetError(f"{archive}: refusing link or device member {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:
                t.extractall(into)
    else:
        raise DatasetError(f"{archive}: neither a zip nor a tar archive")


def unpack_nested(folder: Path, depth: int = 2) -> None:
    """Unpack archives found inside `folder` (e.g. per-class zips), then delete them."""
    for _ in range(depth):
        inner = [
            p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz"))
        ]
        if not inner:
            return
        for p in inner:
            unpack(p, p.parent)
            p.unlink()


def find_member(folder: Path, member: str) -> Path:
    """The shallowest folder named `member` under `folder`; "" = the first level holding more
    than a single folder (the class folders)."""
    if member == "":
        cur = folder
        while True:
            entries = [p for p in cur.iterdir() if not p.name.startswith(("__MACOSX", "."))]
            if len(entries) != 1 or not entries[0].is_dir():
                return cur
            cur = entries[0]
    hits = sorted((p for p in folder.rglob(member) if p.is_dir()), key=lambda p: len(p.parts))
    if not hits:
        raise DatasetError(f"the archive holds no folder named {member!r}")
    return hits[0]


def place(resource: Resource, root: Path, work: Path) -> Path:
    """Download one resource and move its result to `root/resource.dest` (atomic rename)."""
    target = root / resource.dest
    if target.exists():
        return target
    got = fetch(resource.url, work / resource.filename, resource.md5)
    target.parent.mkdir(parents=True, exist_ok=True)
    if resource.member is None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(got, tmp)
        os.replace(tmp, target)
    else:
        scratch = work / f"unpack-{resource.filename}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            unpack(got, scratch)
            unpack_nested(scratch)
            os.replace(find_member(scratch, resource.member), target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    got.unlink(missing_ok=True)
    return target


def download(name: str, root: str | Path) -> list[Path]:
    """Fetch dataset `name` into `root` (a family name fetches events and pictures); returns
    the placed paths. Names: the keys of RESOURCES, FAMILIES and MANUAL."""
    root = Path(root).expanduser()
    parts = FAMILIES.get(name, (name,))
    unknown = [p for p in parts if p not in RESOURCES and p not in MANUAL]
    if unknown:
        valid = sorted(set(RESOURCES) | set(FAMILIES) | set(MANUAL))
        raise DatasetError(f"no download for {name!r}; valid: {', '.join(valid)}")
    work = root / ".tmkt_download"
    placed: list[Path] = []
    for part in parts:
        for res in RESOURCES.get(part, []):
            placed.append(place(res, root, work))
    manual = [MANUAL[p] for p in parts if p in MANUAL]
    if manual:
        raise DatasetError("\n".join(manual) + f"\n(downloaded so far: {placed})")
    shutil.rmtree(work, ignore_errors=True)
    return placed
