"""Image feature networks for metrics: LPIPS (Zhang et al., CVPR 2018) and the FID Inception-v3
(Heusel et al., NeurIPS 2017) as Flax modules.
"""
