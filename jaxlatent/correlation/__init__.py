"""Correlation analysis (Li, Tao, Niu & Li, ICPR 2020): interventions on latent dimensions, concept
effects, controlling sets and latent translation, with a classifier as the concept.
"""
