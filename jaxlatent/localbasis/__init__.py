"""Local Basis (Choi et al., ICLR 2022): the SVD of a tap's Jacobian, its linear and iterative
traversals, Grassmannian distances between local bases and the warpage experiment.
"""
