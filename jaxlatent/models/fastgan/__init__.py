"""FastGAN (Liu et al., ICLR 2021): config, the Flax generator and the model object with its taps.
"""
