"""Data preparation: raw source files -> the prepared-dataset contract (``mrs.data.prepared``).

One module per source (``hm``, ``amazon2023``, ``amazon2014``), shared helpers in ``common``
(bad-row accounting, k-core, modes, checksums) and ``splits``; ``images`` downloads recorded
image URLs; ``cli`` adds ``mrs prepare ...`` and ``mrs download-images``.
"""
