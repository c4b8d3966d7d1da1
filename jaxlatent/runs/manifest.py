"""What a run is: the manifest that a resumed run must match, and the model's fingerprint.

``DIR/manifest.json`` holds the analysis, its options (defaults filled in), the model's SHA-256
(config and every weight), the package version, N, the seed, the chunk size, the latent
convention and the outputs' declarations: together the *identity* of the run. A rerun whose
identity differs in any field is refused, with the fields named. The manifest also carries
provenance that does not have to match (checkpoint path, jax version) and, once the run has
ended, ``complete`` and ``chunks_done``; the authoritative list of done chunks is the commit
records under ``DIR/chunks/`` (:mod:`jaxlatent.runs.store`). The file carries the SHA-256 of
its own content, so a damaged manifest is told apart from a different one.
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import numpy as np

from jaxlatent import __version__
from jaxlatent.runs.store import (RunCorruptError, RunMismatchError, json_bytes, read_checked_json,
                                  with_checksum, write_atomic)

FORMAT = "jaxlatent.run"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
LATENTS = "z_i = numpy.random.RandomState(seed + i).randn(z_dim) (NVlabs per-seed convention)"
BIGGAN_LATENTS = ("z_i = truncated_noise_sample(1, z_dim, truncation, seed + i) (pytorch-pretrained-biggan's draw, "
                  "truncation: the truncation_psi option or 1)")
IDENTITY = ("format_version", "analysis", "options", "model_sha256", "package_version", "n", "seed",
            "chunk_size", "latents", "outputs", "stages")


def model_digest(model) -> str:
    """SHA-256 of a model's config (JSON) and of every weight (path, dtype, shape and bytes).

    Two models with the same digest compute the same functions; the checkpoint's file
    digest would not do, since one model can be stored in several formats.
    """
    sha = hashlib.sha256(model.config.to_json().encode())
    leaves = jax.tree_util.tree_flatten_with_path(model.params)[0]
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        x = np.ascontiguousarray(np.asarray(leaf))
        sha.update(f"{jax.tree_util.keystr(path)}|{x.dtype.str}|{x.shape}".encode())
        sha.update(x.tobytes())
    return sha.hexdigest()


def build_manifest(*, analysis: str, options: dict, model, n: int, seed: int, chunk_size: int,
                   outputs, checkpoint: str | None = None, stages: list | None = None) -> dict:
    """The manifest of a run (identity fields plus provenance), not yet written.

    ``stages``: the :meth:`~jaxlatent.runs.stages.Stage.describe` of every stage of an analysis
    with more than the one per-latent stage (None otherwise: the manifest of a one-stage run has
    no ``stages`` field).
    """
    source = getattr(model, "source", None) or {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "analysis": analysis,
        "options": json.loads(json.dumps(options, sort_keys=True)),
        "model_sha256": model_digest(model),
        "package_version": __version__,
        "n": int(n),
        "seed": int(seed),
        "chunk_size": int(chunk_size),
        "latents": BIGGAN_LATENTS if model.config.family == "biggan" else LATENTS,
        "outputs": {o.name: {"shape": list(o.shape), "dtype": str(o.dtype)} for o in outputs},
        **({"stages": stages} if stages else {}),
        "checkpoint": None if checkpoint is None else os.path.abspath(os.fspath(checkpoint)),
        "model_source": json.loads(json.dumps(source, default=str)),
        "jax_version": jax.__version__,
        "complete": False,
        "chunks_done": 0,
    }


def run_id(manifest: dict) -> str:
    """Digest of the identity fields: every commit record carries it."""
    fields = {k: manifest.get(k) for k in IDENTITY if k in manifest or k != "stages"}
    return hashlib.sha256(json_bytes(fields)).hexdigest()[:16]


def manifest_path(path: str) -> str:
    return os.path.join(os.fspath(path), MANIFEST_FILE)


def write_manifest(path: str, manifest: dict) -> None:
    """Write ``DIR/manifest.json`` atomically with its own checksum."""
    write_atomic(manifest_path(path), json_bytes(with_checksum(manifest)))


def read_manifest(path: str) -> dict:
    """Read and check ``DIR/manifest.json``; a damaged file raises :class:`RunCorruptError`."""
    where = manifest_path(path)
    manifest = read_checked_json(where, "run manifest")
    if manifest.get("format") != FORMAT:
        raise RunCorruptError(f"{where}: not a jaxlatent run manifest (format {manifest.get('format')!r})")
    return manifest


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def differences(stored: dict, wanted: dict) -> list[str]:
    """Identity fields in which two manifests differ, as ``field: stored -> wanted`` lines."""
    lines = []
    for key in IDENTITY:
        a, b = stored.get(key), wanted.get(key)
        if key == "options" and isinstance(a, dict) and isinstance(b, dict):
            for opt in sorted(set(a) | set(b)):
                if a.get(opt) != b.get(opt):
                    lines.append(f"option {opt}: stored {_short(a.get(opt))}, asked {_short(b.get(opt))}")
        elif a != b:
            lines.append(f"{key}: stored {_short(a)}, asked {_short(b)}")
    return lines


def check_same_run(path: str, stored: dict, wanted: dict) -> None:
    """Refuse to resume a run whose identity differs from the one asked for."""
    diff = differences(stored, wanted)
    if diff:
        raise RunMismatchError(
            f"{manifest_path(path)}: this folder holds a different run, so it cannot be resumed: "
            + "; ".join(diff) + ". Use another --out folder (or delete this one to start over)")
