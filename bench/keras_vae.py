"""Reference: the original Keras 3 / JAX VAE (same architecture and loss as kmervae's default).

Run by bench/train.py with the Python of a separate venv holding ``keras`` and ``jax``
(not a kmervae dependency)::

    python3 -m venv /tmp/kerasjax && /tmp/kerasjax/bin/pip install keras jax
    /tmp/kerasjax/bin/python bench/keras_vae.py TRAIN.npy VAL.npy --epochs 3

Inputs are already CLR-transformed float32 matrices (the original implementation loads them so).
Prints one JSON line: samples/s per epoch (``fit``, data pipeline included) and the
validation loss (MSE x width + beta KL on z_mean, inference mode) after the last epoch.
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402


class Sampling(layers.Layer):
    """z = mean + exp(log_var / 2) * eps while training; z_mean otherwise. Adds beta * KL to the loss."""

    def __init__(self, beta, seed, **kw):
        super().__init__(**kw)
        self.beta = beta
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        kl = -0.5 * ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
        self.add_loss(self.beta * ops.mean(kl))
        if training:
            eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            return mean + ops.exp(0.5 * log_var) * eps
        return mean


def block(x, width):
    x = layers.Dense(width)(x)
    x = layers.BatchNormalization()(x)
    return layers.LeakyReLU(negative_slope=0.2)(x)


def build(width, hidden=(1024, 512), latent=384, beta=0.05, lr=1e-4, seed=42):
    inputs = keras.Input((width,))
    h = inputs
    for w in hidden:
        h = block(h, w)
    mean = layers.Dense(latent)(h)
    log_var = ops.clip(layers.Dense(latent)(h), -20.0, 2.0)
    z = Sampling(beta, seed)([mean, log_var])
    for w in reversed(hidden):
        z = block(z, w)
    out = layers.Dense(width)(z)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=lambda y, p: ops.sum(ops.square(y - p), axis=-1))
    return model


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args()
    keras.utils.set_random_seed(42)
    x, v = np.load(args.train), np.load(args.val)
    model = build(x.shape[1])
    timer = EpochTimer()
    model.fit(
        x, x, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[timer]
    )
    val_loss = model.evaluate(v, v, batch_size=8192, verbose=0)
    print(
        json.dumps(
            {
                "samples_per_s": [len(x) / s for s in timer.seconds],
                "val_loss": float(val_loss),
                "keras": keras.__version__,
                "backend": keras.backend.backend(),
            }
        )
    )


if __name__ == "__main__":
    main()
