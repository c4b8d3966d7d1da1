"""Train the shipped digit models and write them with their quality figures.

    python -m jaxlatent.train.digits --out jaxlatent/assets/digits

writes ``OUT/config.json`` + ``OUT/params/`` (the EMA generator as a converted StyleGAN2
directory: ``jaxlatent.load(OUT)``), ``OUT/classifier/`` (the digit classifier),
``OUT/quality.json`` (``jaxlatent.train.quality.evaluate`` plus timings) and
``OUT/samples.png``. Deterministic from ``--seed`` on a given machine; see
``docs/training.md`` for the time taken and the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import jax

from jaxlatent.report import plots as viz
from jaxlatent.models.digits import assets_dir
from jaxlatent.train.classifier import save_classifier
from jaxlatent.io import save
from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config
from jaxlatent.train import classifier as C
from jaxlatent.train import data, gan, quality
from jaxlatent.train.discriminator import DiscriminatorConfig

# 16x16 grey digits; 4-layer mapping network so that per-layer analyses have layers to compare.
# The mapping learning rate is 0.1x (NVlabs: 0.01x): with 0.01x a few thousand steps leave the
# mapping network within a few percent of its random initialisation.
GENERATOR = StyleGAN2Config(z_dim=64, w_dim=64, img_resolution=16, img_channels=1,
                            mapping_layers=4, mapping_lr_multiplier=0.1, channel_base=512,
                            channel_max=64, architecture="skip")
DISCRIMINATOR = DiscriminatorConfig(img_resolution=16, img_channels=1, channel_base=512,
                                    channel_max=64)
TRAINING = gan.TrainConfig(seed=0, steps=3000, batch=32, r1_gamma=0.05)
CLASSIFIER = C.ClassifierConfig(resolution=16, seed=0)


def run(out: str, g_config: StyleGAN2Config = GENERATOR,
        d_config: DiscriminatorConfig = DISCRIMINATOR, tc: gan.TrainConfig = TRAINING,
        cc: C.ClassifierConfig = CLASSIFIER, snapshot: str | None = None, num_eval: int = 1000,
        progress: bool = True, log=None) -> dict:
    """Train classifier and GAN, write everything under ``out``; returns the quality record."""
    train, held = data.load_split(g_config.img_resolution)
    t0 = time.time()
    clf = C.train_classifier(cc, train.images, train.labels, progress=progress)
    t_clf = time.time() - t0
    # Time spent on the GAN by earlier invocations that completed a run from this snapshot.
    timing = f"{snapshot}.json" if snapshot else None
    t_before = 0.0
    if timing and os.path.exists(snapshot) and os.path.exists(timing):
        with open(timing) as f:
            t_before = float(json.load(f)["gan_seconds"])
    t0 = time.time()
    state = gan.train(g_config, d_config, tc, train.images, snapshot=snapshot, progress=progress,
                      log=log)
    t_gan = t_before + time.time() - t0
    if timing:
        with open(timing, "w") as f:
            json.dump({"gan_seconds": t_gan, "steps": int(state.step)}, f)

    model = StyleGAN2(g_config, jax.tree_util.tree_map(jax.numpy.asarray, state.g_ema))
    untrained = StyleGAN2(g_config, gan.init_state(g_config, d_config, tc).g_params)
    source = {
        "trained_by": "jaxlatent.train.digits",
        "dataset": "sklearn.datasets.load_digits, 16x16, training split",
        "network": "G_ema",
        "training": dataclasses.asdict(tc),
        "discriminator": dataclasses.asdict(d_config),
    }
    save(model, out, source=source, overwrite=True)
    save_classifier(clf, os.path.join(out, "classifier"))
    record = quality.evaluate(model, untrained, clf, train, held, n=num_eval, seed=0)
    record["train_seconds"] = {"classifier": round(t_clf, 1), "gan": round(t_gan, 1)}
    record["machine"] = {"backend": jax.default_backend(), "cpu_count": os.cpu_count(),
                         "platform": platform.platform()}
    record["steps"] = int(state.step)
    with open(os.path.join(out, "quality.json"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    viz.save_image_grid(quality.sample_images(model, 64, seed=1), os.path.join(out, "samples.png"),
                        nrow=8)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxlatent.train.digits",
                                description="Train the shipped digit GAN and classifier.")
    p.add_argument("--out", default=assets_dir(), help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=TRAINING.seed)
    p.add_argument("--steps", type=int, default=TRAINING.steps)
    p.add_argument("--snapshot", default=None,
                   help="training snapshot .npz, rewritten every 500 steps; resumes if present")
    args = p.parse_args(argv)
    tc = dataclasses.replace(TRAINING, seed=args.seed, steps=args.steps)
    cc = dataclasses.replace(CLASSIFIER, seed=args.seed)
    record = run(args.out, tc=tc, cc=cc, snapshot=args.snapshot)
    g = record["generated"]
    print(f"classifier held-out accuracy {record['classifier_accuracy_held_out']:.4f}; "
          f"generated: confident share {g['confident_share']:.3f}, classes {g['class_histogram']}; "
          f"FD {record['fd_generated_vs_train']:.2f} (untrained {record['fd_untrained_vs_train']:.1f}, "
          f"real held-out {record['fd_held_out_vs_train']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
