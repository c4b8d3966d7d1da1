"""The Riemannian metric of the image manifold (Wang & Ponce, ICLR 2021): H(z) = J^T M J, its
eigen-spectra and statistics, and metric-aware inversion.
"""
