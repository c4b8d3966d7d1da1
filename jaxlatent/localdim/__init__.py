"""Local dimension estimation and the Distortion metric (Choi et al. 2022): the rank of a tap's
Jacobian under a singular-value threshold, and how much that rank varies across latent space.
"""
