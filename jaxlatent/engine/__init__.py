"""How work runs, for every analysis: chunked maps over batches and device meshes, BLAS threads,
Jacobians and their matrix-free operators, Krylov and spectral solvers, ordered linear algebra,
input checks, and latents drawn from seeds.
"""
