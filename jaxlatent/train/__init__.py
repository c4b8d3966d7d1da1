"""Training code for the models that ship inside the package (``jaxlatent/assets/digits``).

``python -m jaxlatent.train.digits --out DIR`` trains a small StyleGAN2 and a digit classifier
on scikit-learn's bundled handwritten digits and writes the checkpoint, the classifier and
their quality measurements (``docs/training.md``).
"""
