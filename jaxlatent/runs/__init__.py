"""Long runs over many latents: streamed into a chunked zarr v3 store, resumable, multi-host.

``run(analysis, model, n, out, ...)`` computes a registered per-latent analysis for latents
``0..n-1`` chunk by chunk and commits each chunk atomically with its checksums;
``open_run(out)`` reads the result back as output name -> lazy array. See ``docs/runs.md``.
"""

from jaxlatent.runs import analyses, controlling, edit_fid, pairs, population  # register the shipped analyses
from jaxlatent.runs.registry import Analysis, Option, get as get_analysis, names as analysis_names, register
from jaxlatent.runs.results import RunResult, StoredArray, open_run
from jaxlatent.runs.runner import DEFAULT_CHUNK_SIZE, latents, row_keys, run
from jaxlatent.runs.store import (Output, RunCorruptError, RunError, RunMismatchError, RunWriteError)

__all__ = ["run", "open_run", "RunResult", "StoredArray", "Analysis", "Option", "Output", "register",
           "get_analysis", "analysis_names", "latents", "row_keys", "DEFAULT_CHUNK_SIZE", "RunError",
           "RunCorruptError", "RunMismatchError", "RunWriteError"]
