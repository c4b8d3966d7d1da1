"""GANSpace (Härkönen et al. 2020) and its ICA variant (Palaev et al. 2023): population moments,
PCA and ICA of a tap's activations, layer-range edits and the Fréchet distance of edited images.
"""
