"""The VAE of kmervae, in layers that import one way:

``config`` (the key table; torch-free) → ``blocks`` (Linear/BatchNorm/LeakyReLU stacks,
the distributed BatchNorm) → ``inputs`` (the input transform and the k-group check) →
``heads`` → ``bodies`` (flat or branched encoder/decoder) → ``losses`` (reconstruction
losses, the KL, :class:`~kmervae.vae.losses.LossOutput`, diagnostics) → ``model`` (the
one :class:`~kmervae.vae.model.VAE` class). :mod:`kmervae.vae.files` builds, saves and loads
models; :mod:`kmervae.train` trains them through ``VAE.loss`` alone.
"""
