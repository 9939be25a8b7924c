"""Closed-form baselines: whole models fitted once from the train matrix, no gradient training.

``pop`` (:mod:`.pop`), ``itemknn`` and ``rp3beta`` (:mod:`.neighbours`), ``ease`` (:mod:`.ease`).
They register in :data:`mrs.models.base.CLOSED_FORM` and are selected with ``model.encoder``;
options live under ``model.options.<name>.*``. Every module of this package is imported on the
first registry lookup (modules starting with ``_`` are skipped).
"""
