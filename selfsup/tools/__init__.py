"""Tools beside training: most read finished run directories, each used by its script in ``scripts/``.

- :mod:`selfsup.tools.collect`: a sweep's runs as one table, seeds averaged (``scripts/collect.py``).
- :mod:`selfsup.tools.selection`: how well RankMe / LiDAR rank runs (``scripts/select_runs.py``).
- :mod:`selfsup.tools.reproduce`: paper tables, ours beside the published numbers
  (``scripts/reproduce.py``); the published numbers are read from ``docs/published/``.
- :mod:`selfsup.tools.config_reference`: the documentation's configuration reference, from
  ``configs/`` and :mod:`selfsup.schema` (``docs/hooks/config_reference.py``, ``make docs``).

Training never imports them; the run-directory tools read what :mod:`selfsup.run_dir` writes (and
:func:`selfsup.run_dir.load_runs` is the one reader of ``results.json``).
"""
