"""The embedded model's recipe: how every shipped weights file was made, and the only code that writes into the package.

Each step is a module run with ``python -m humansd_core.embedded.recipe.<step>``; its
settings are the presets in ``humansd_core/assets/presets/`` (:mod:`.presets`):

* ``estimators``: the two mannequin pose estimators (``estimator_loss``, ``estimator_judge``);
* ``vae``: the autoencoder alone (``humansd`` trains it in-process);
* ``humansd``: scenes, VAE, ``humansd train`` of the UNet and text tower, evaluation,
  ``--install`` of ``humansd_tiny.safetensors``;
* ``distilled``: the distilled loss net (``distilled_loss.safetensors``) on that model;
* ``ablation``: the heatmap-guided loss against the plain loss on the same recipe (writes
  only into its work folder).

A step that writes into ``assets/weights/`` updates ``SHA256SUMS`` through
:mod:`humansd_core.assets`. Order of the shipped files: estimators, then humansd (its
loss reads the ``loss`` estimator), then distilled.
"""
