"""Token-map store: the multi-scale token maps of many images, as resumable shards in one folder.

A *map* is all scales of one image concatenated, (L,) with L = sum(pn * pn) (155 for the mini
scales, 680 for the paper's). Maps are stored in shards of `shard_size` consecutive items; shard j
holds items j*S .. j*S+S-1 as three plain .npy files, so they can be memory-mapped:

    shard_00000.tokens.npy   (n, L) uint16 (int32 if vocab_size > 65536)
    shard_00000.labels.npy   (n,)   int64  class ids
    shard_00000.ids.npy      (n,)   int64  dataset index (real maps) or RNG sample id (generated maps)

`manifest.json` describes the store (kind, free-form meta, scales, vocabulary, total, shard size)
and lists the finished shards with the sha256 of each file. Every file is written to a temporary
name, fsynced and renamed; a finished shard first gets an entry file (shard_j.entry.json), which
moves into the manifest as every shard before it is listed, so a shard exists only once its
entry or manifest line does (several torchrun ranks may write shards of one store, see write_store). An interrupted `write_store` resumes where it stopped; since shards are
aligned to `shard_size` and the producer is deterministic per item range, the resumed folder is
byte-identical to one written in a single go. A folder holding a different run (another spec) is
refused and never touched: finished data is only ever added to, not replaced.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from lsrs.core.runtime import CPU, Runtime

FORMAT = 1
KINDS = ("real", "generated")
PARTS = ("tokens", "labels", "ids")
MANIFEST = "manifest.json"
ENTRY_SUFFIX = ".entry.json"  # a finished shard not yet in the manifest (see write_store)

Producer = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


class StoreError(RuntimeError):
    """A token store is missing, corrupt, incomplete or belongs to another run; the message says which file."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest dtype that holds every token id: uint16 up to 65536 codes, else int32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.int32)


def _as_json(meta: dict) -> dict:
    """`meta` as it reads back from JSON (tuples become lists), so stored and requested specs compare equal."""
    try:
        return json.loads(json.dumps(meta, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"store meta must be JSON-serialisable: {exc}") from exc


@dataclass(frozen=True)
class StoreSpec:
    """What identifies a store: resuming is allowed only into a folder with an equal spec."""

    kind: str  # "real" or "generated"
    meta: dict  # model files, sampling settings, seed, stream...: anything that changes the maps
    patch_nums: tuple[int, ...]
    vocab_size: int
    total: int  # number of maps
    shard_size: int

    def __post_init__(self):
        object.__setattr__(self, "meta", _as_json(self.meta))
        object.__setattr__(self, "patch_nums", tuple(int(p) for p in self.patch_nums))
        if self.kind not in KINDS:
            raise ValueError(f"store kind must be one of {KINDS}, got {self.kind!r}")
        if not self.patch_nums or min(self.patch_nums) < 1:
            raise ValueError(f"patch_nums must be positive, got {self.patch_nums}")
        if self.vocab_size < 1 or self.total < 1 or self.shard_size < 1:
            raise ValueError("vocab_size, total and shard_size must be >= 1")

    @property
    def map_len(self) -> int:
        return sum(pn * pn for pn in self.patch_nums)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.total / self.shard_size)

    def shard_range(self, j: int) -> tuple[int, int]:
        """(start, count) of shard j."""
        start = j * self.shard_size
        return start, min(self.shard_size, self.total - start)

    def to_json(self) -> dict:
        return {"kind": self.kind, "meta": self.meta, "patch_nums": list(self.patch_nums),
                "vocab_size": self.vocab_size, "total": self.total, "shard_size": self.shard_size}


def shard_name(j: int) -> str:
    return f"shard_{j:05d}"


def _short(value, width: int = 120) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


def spec_differences(stored: StoreSpec, wanted: StoreSpec) -> list[str]:
    """One line per differing field (per top-level key for meta)."""
    out = []
    for f in fields(StoreSpec):
        a, b = getattr(stored, f.name), getattr(wanted, f.name)
        if f.name == "meta":
            absent = object()
            out += [f"meta.{k}: folder has {_short(a.get(k)) if k in a else '(absent)'}, "
                    f"requested {_short(b.get(k)) if k in b else '(absent)'}"
                    for k in sorted(set(a) | set(b)) if a.get(k, absent) != b.get(k, absent)]
        elif a != b:
            out.append(f"{f.name}: folder has {_short(a)}, requested {_short(b)}")
    return out


# --------------------------------------------------------------------------- reading
class TokenStore:
    """A store folder opened for reading. Shards are memory-mapped; `tokens` etc. concatenate them (once)."""

    def __init__(self, path: Path, spec: StoreSpec, shards: list[dict], complete: bool):
        self.path, self.spec, self.shards, self.complete = Path(path), spec, shards, complete

    @classmethod
    def open(cls, path: str | Path, allow_incomplete: bool = False) -> "TokenStore":
        """Read the manifest at `path`; an incomplete store is refused unless `allow_incomplete`."""
        path = Path(path)
        store = cls(path, *_read_manifest(path / MANIFEST))
        for entry in store.shards:
            for part in PARTS:
                if not store._file(entry, part).is_file():
                    raise StoreError(f"{store._file(entry, part)} is listed in {path / MANIFEST} but missing")
        if not store.complete and not allow_incomplete:
            raise StoreError(f"token store {path} is incomplete ({len(store.shards)} of {store.spec.num_shards} "
                             f"shards); rerun the command that writes it to resume")
        return store

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.spec.patch_nums

    @property
    def vocab_size(self) -> int:
        return self.spec.vocab_size

    def __len__(self) -> int:
        return sum(e["count"] for e in self.shards)

    def _file(self, entry: dict, part: str) -> Path:
        return self.path / f"{entry['name']}.{part}.npy"

    def shard(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Memory-mapped (tokens, labels, ids) of the j-th finished shard, shapes and dtypes checked."""
        entry = self.shards[j]
        n, want = entry["count"], {"tokens": token_dtype(self.vocab_size), "labels": np.int64, "ids": np.int64}
        shapes = {"tokens": (n, self.spec.map_len), "labels": (n,), "ids": (n,)}
        return tuple(_load_npy(self._file(entry, p), shapes[p], np.dtype(want[p])) for p in PARTS)

    def _concat(self, k: int) -> np.ndarray:
        parts = [self.shard(j)[k] for j in range(len(self.shards))]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            shape = (0, self.spec.map_len) if k == 0 else (0,)
            return np.zeros(shape, token_dtype(self.vocab_size) if k == 0 else np.int64)
        return np.concatenate(parts)  # reads into memory; use shard(j) to stream a large store

    @cached_property
    def tokens(self) -> np.ndarray:
        """(N, L) all maps; memory-mapped when the store has one shard, else read into memory."""
        return self._concat(0)

    @cached_property
    def labels(self) -> np.ndarray:
        return self._concat(1)

    @cached_property
    def ids(self) -> np.ndarray:
        return self._concat(2)

    def scales(self) -> list[np.ndarray]:
        """Per-scale views (N, pn * pn) of `tokens`."""
        cuts = np.cumsum([pn * pn for pn in self.patch_nums])[:-1]
        return np.split(self.tokens, cuts, axis=1)

    def verify(self) -> None:
        """Recompute the sha256 of every shard file; raise StoreError listing every mismatch."""
        bad = [f"{self._file(e, p).name} ({e['name']})" for e in self.shards for p in PARTS
               if not self._file(e, p).is_file() or _sha256_file(self._file(e, p)) != e["sha256"][p]]
        if bad:
            raise StoreError(f"token store {self.path}: {len(bad)} file(s) do not match their sha256 in "
                             f"{MANIFEST} (corrupted or modified): {', '.join(bad)}")


def _read_manifest(path: Path) -> tuple[StoreSpec, list[dict], bool]:
    if not path.is_file():
        raise StoreError(f"no token store at {path.parent}: {path.name} not found")
    try:
        m = json.loads(path.read_text())
        if m.get("format") != FORMAT:
            raise StoreError(f"{path}: unknown store format {m.get('format')!r} (this code reads {FORMAT})")
        spec = StoreSpec(kind=m["kind"], meta=m["meta"], patch_nums=m["patch_nums"], vocab_size=m["vocab_size"],
                         total=m["total"], shard_size=m["shard_size"])
        shards = [{"name": e["name"], "start": int(e["start"]), "count": int(e["count"]),
                   "sha256": {p: str(e["sha256"][p]) for p in PARTS}} for e in m["shards"]]
        return spec, shards, bool(m["complete"])
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"{path} is corrupt ({type(exc).__name__}: {exc})") from exc


def _load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} could not be read ({type(exc).__name__}: {exc})") from exc
    if arr.shape != shape or arr.dtype != dtype:
        raise StoreError(f"{path}: expected {dtype} {shape}, found {arr.dtype} {arr.shape}")
    return arr


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- writing
def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _is_tmp(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp" in path.name


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers never see half a file."""
    tmp = _tmp_name(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    """Make the renames in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_npy(path: Path, arr: np.ndarray) -> str:
    """Atomically save `arr` as .npy and return the sha256 of the bytes written."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    data = buf.getvalue()
    _atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def _write_manifest(path: Path, spec: StoreSpec, shards: list[dict]) -> None:
    m = {"format": FORMAT, **spec.to_json(), "shards": shards, "complete": len(shards) == spec.num_shards}
    _atomic_write(path / MANIFEST, (json.dumps(m, indent=1) + "\n").encode())
    _fsync_dir(path)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder, so two writers never interleave (or delete each other's temp files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"another process is writing the token store {path}") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_batch(spec: StoreSpec, start: int, count: int, tokens, labels, ids):
    """The producer's arrays, validated and cast to the on-disk dtypes."""
    tokens, labels, ids = np.asarray(tokens), np.asarray(labels), np.asarray(ids)
    where = f"producer output for items {start}..{start + count - 1}"
    if tokens.shape != (count, spec.map_len):
        raise ValueError(f"{where}: tokens must have shape {(count, spec.map_len)}, got {tokens.shape}")
    for name, arr in (("tokens", tokens), ("labels", labels), ("ids", ids)):
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{where}: {name} must be integers, got {arr.dtype}")
        if name != "tokens" and arr.shape != (count,):
            raise ValueError(f"{where}: {name} must have shape {(count,)}, got {arr.shape}")
    if count and (tokens.min() < 0 or tokens.max() >= spec.vocab_size):
        raise ValueError(f"{where}: token ids must be in [0, {spec.vocab_size}), "
                         f"found {tokens.min()}..{tokens.max()}")
    return tokens.astype(token_dtype(spec.vocab_size)), labels.astype(np.int64), ids.astype(np.int64)


def _start_or_resume(path: Path, spec: StoreSpec, log: Callable[[str], None]) -> TokenStore:
    """The store already in `path` if its spec equals `spec` (finished shards verified), else a new empty one."""
    manifest = path / MANIFEST
    if not manifest.exists():
        foreign = sorted(p.name for p in path.iterdir() if not _is_tmp(p))
        if foreign:
            raise StoreError(f"{path} is not empty and holds no {MANIFEST} (found {', '.join(foreign[:5])}); "
                             f"choose an empty or new folder for the token store")
        _write_manifest(path, spec, [])
        return TokenStore(path, spec, [], complete=False)
    store = TokenStore(path, *_read_manifest(manifest))
    diff = spec_differences(store.spec, spec)
    if diff:
        raise StoreError(f"{path} holds a different token store run; nothing was changed. Differences:\n  "
                         + "\n  ".join(diff) + f"\nChoose another folder, or delete {path} to recompute it.")
    if store.shards:
        state = "complete" if store.complete else f"resuming, {len(store.shards)} of {spec.num_shards} shards done"
        log(f"token store {path}: {state}; verifying the finished shards")
        _verify_finished(store)
    return store


def _verify_finished(store: TokenStore) -> None:
    """Shapes, dtypes and checksums of every listed shard; a mismatch stops the run, it is never overwritten."""
    for j, entry in enumerate(store.shards):
        if (entry["name"], entry["start"]) != (shard_name(j), j * store.spec.shard_size) or \
                entry["count"] != store.spec.shard_range(j)[1]:
            raise StoreError(f"{store.path / MANIFEST}: shard entry {j} ({entry['name']}) does not fit the spec")
        try:
            store.shard(j)
        except StoreError as exc:
            raise StoreError(f"finished shard {entry['name']} is damaged: {exc}. Delete {store.path} to "
                             f"recompute the store") from exc
    try:
        store.verify()
    except StoreError as exc:
        raise StoreError(f"{exc}. Finished shards are never overwritten: restore the files or delete "
                         f"{store.path} to recompute the store") from exc


def _remove_temp_files(path: Path, log: Callable[[str], None]) -> None:
    for p in sorted(path.iterdir()):
        if _is_tmp(p) and p.is_file():
            log(f"token store {path}: removing {p.name} left by an interrupted write")
            p.unlink()


def write_store(path: str | Path, spec: StoreSpec, produce: Producer, log: Callable[[str], None] = print,
                progress: bool = True, runtime: Runtime = CPU) -> TokenStore:
    """Fill the store at `path` shard by shard with `produce(start, count) -> (tokens, labels, ids)`.

    Resumes a store with an equal spec (only the missing shards are produced) and refuses one with
    another spec. `produce` must depend only on its item range, so shard j is the same bytes
    whether it is written in one run, after an interruption, or by any rank of a torchrun job.

    With several processes (`runtime.world` > 1, one shared folder) rank r writes the shards
    j = r, r + world, ...; each finished shard leaves an entry file (shard_j.entry.json) and rank 0 moves
    the entries into the manifest at the end, in shard order, so the manifest equals a one-process
    run's. Rank 0 alone checks, resumes and locks the folder; an interrupted job resumes from the
    manifest plus the entries left behind.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path) if runtime.is_main else nullcontext():
        if runtime.is_main:
            _start_or_resume(path, spec, log)
            _remove_temp_files(path, log)
        runtime.barrier()
        shards = _read_manifest(path / MANIFEST)[1]
        done = {e["name"] for e in shards} | {f.name[:-len(ENTRY_SUFFIX)] for f in path.glob("shard_*" + ENTRY_SUFFIX)}
        todo = [j for j in runtime.mine(spec.num_shards) if shard_name(j) not in done]
        mine = sum(spec.shard_range(j)[1] for j in runtime.mine(spec.num_shards))
        with tqdm(total=mine, initial=mine - sum(spec.shard_range(j)[1] for j in todo), unit="map",
                  desc=f"{spec.kind} token maps" + (f" (rank {runtime.rank})" if runtime.distributed else ""),
                  disable=not progress) as bar:
            for j in todo:
                start, count = spec.shard_range(j)
                arrays = _check_batch(spec, start, count, *produce(start, count))
                name = shard_name(j)
                sha = {p: _write_npy(path / f"{name}.{p}.npy", a) for p, a in zip(PARTS, arrays)}
                entry = {"name": name, "start": start, "count": count, "sha256": sha}
                _atomic_write(path / f"{name}{ENTRY_SUFFIX}", json.dumps(entry).encode())
                if not runtime.distributed:
                    shards = _adopt_entries(path, spec, shards)
                bar.update(count)
        runtime.barrier()
        if runtime.is_main:
            shards = _adopt_entries(path, spec, shards)
            if len(shards) != spec.num_shards:
                raise StoreError(f"token store {path}: only {len(shards)} of {spec.num_shards} shards were written")
            log(f"token store {path}: complete, {spec.total} {spec.kind} maps in {spec.num_shards} shard(s)")
        runtime.barrier()
    return TokenStore.open(path)


def _adopt_entries(path: Path, spec: StoreSpec, shards: list[dict]) -> list[dict]:
    """Move the entry files of the shards that directly follow the listed ones into the manifest."""
    shards, adopted = list(shards), []
    while len(shards) < spec.num_shards and (f := path / f"{shard_name(len(shards))}{ENTRY_SUFFIX}").is_file():
        entry = json.loads(f.read_text())
        if (entry["name"], entry["start"], entry["count"]) != (f.name[:-len(ENTRY_SUFFIX)], *spec.shard_range(len(shards))):
            raise StoreError(f"{f} does not describe shard {len(shards)} of this store")
        shards.append(entry)
        adopted.append(f)
    if adopted:
        _write_manifest(path, spec, shards)
        for f in adopted:
            f.unlink()
    return shards
