"""StyleGAN2 / StyleGAN2-ADA (Karras et al.): config, Flax layers, the generator module and the
model object with its taps.
"""
